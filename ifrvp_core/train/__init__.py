"""Training engine: one engine for every dataset, one process or many (torchrun), exact resume.

    python -m ifrvp_core.train --model_name IFRNet_S --dataset synthetic --max_steps 500
    torchrun --nproc_per_node=4 -m ifrvp_core.train --dataset vimeo90k --data_root /data/vimeo_septuplet
    ifrvp train --config configs/cityscapes.yaml --batch_size 6      # flags win over the file

The seed project's flags and defaults are kept (`--model_name IFRNet --epochs 300
--batch_size 12 --lr_start 1e-4 --lr_end 1e-5 --log_path checkpoint --resume_epoch 0
--resume_path None`). The recipe is IFRNet's: AdamW (no weight decay), cosine LR per iteration
from lr_start to lr_end, Charbonnier + census + geometry + flow distillation (with a motion prior the
per-sample RMSE replaces Charbonnier: `--loss_rmse auto`).

The extrapolation recipe adds (each a flag, see `TrainConfig`; measured in notebook 06_ablations):
`--motion_prior dis` (the decoders refine a correction of the constant-velocity DIS flow; or
`lucas_kanade`, the same with a torch Lucas–Kanade flow the model computes on its device),
`--teacher_flow auto` (prepared teacher flow when present, else DIS from the real target to every
context frame, computed on the fly: distillation never drops out silently); the distillation's
robustness is a flag too (`--loss_distillation_beta`, IFRNet's 0.3 by default). Validation scores
copy-last, DIS extrapolation and prior_only (the untrained twin) on the same samples, so a model
that collapses to copying, or that learns nothing beyond its motion prior, shows it in
`log.jsonl`, TensorBoard and `summary.json` (`baselines`, `beats_baselines`).

Distributed: torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; backend nccl with CUDA, gloo otherwise;
only rank 0 writes. The sample order depends only on (seed, epoch), so a run resumed from
`latest.pt` (saved every `--save_interval_steps`, at each epoch end, and on SIGTERM/SIGINT)
continues with exactly the batches an uninterrupted run would have seen.

Multi-node (same command on every node; node 0's address as the rendezvous endpoint):

    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_id=job42 \
        --rdzv_endpoint=node0.example:29500 -m ifrvp_core.train --dataset vimeo90k --data_root /data/vimeo

Long runs survive bad inputs (see `TrainConfig`'s robustness fields and README "Training"):
a sample whose file cannot be read is replaced by the next one in the epoch's shuffled order
(`--on_bad_sample skip`, the default; each file logged once; `--max_bad_samples` distinct files at
most), and a step with a non-finite loss or gradient norm is skipped for every precision and
every rank together (`--max_bad_steps` in a row at most). A skipped step still counts as an
iteration (its batch is consumed and the LR schedule moves on), so the data order and resume
stay exact. Checkpoints with non-finite weights are never written.

A run folder that already holds a run (`config.RUN_FILES`) is refused before any work unless the
run continues it (`--resume auto` / `--resume PATH`) or `--overwrite` starts afresh (deleting that
run's logs and checkpoints). `--help` lists every flag with its meaning, default and valid values
(from `TrainConfig`'s field metadata); a bad value stops at once, naming the flag.

Exit codes: 0 finished; 1 failed (the failing rank prints its error and exits at once, so torchrun
stops the others); 2 a bad flag or config value; 128 + signal (143 SIGTERM, 130 SIGINT) after the current step
was finished and `latest.pt` saved - rerun with `--resume auto` to continue.

The package, one concept a module: `config` (TrainConfig, its checks, flags and files), `trainer`
(the Trainer and its loop), `validation` (model and baselines on the validation samples), `guard`
(bad samples and bad steps), `runlog` (text, log.jsonl, log.csv, TensorBoard, summary.json),
`state` (checkpoints and RNG state), `distributed` (ranks, collectives, signals, teardown),
`entry` (`main`) and `launch` (training in fresh processes from a notebook cell).
"""
from importlib import import_module

# The names are imported lazily (as in `ifrvp_core`): `python -m ifrvp_core.train --help` and
# `ifrvp train --help` import this package, and the trainer imports torch (seconds).
_PUBLIC = {
    "LOSS_FIELDS": "config", "TEACHER_FLOW_MODES": "config", "VAL_SPLITS": "config", "TrainConfig": "config",
    "Dist": "distributed", "StopFlag": "distributed", "all_reduce_sum": "distributed", "setup_distributed": "distributed",
    "main": "entry", "TrainingAborted": "guard", "open_tensorboard": "runlog",
    "library_versions": "state", "nonfinite_weights": "state", "rng_state": "state", "set_rng_state": "state",
    "Trainer": "trainer", "cosine_lr": "trainer",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(import_module(f"ifrvp_core.train.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'ifrvp_core.train' has no attribute {name!r}")
