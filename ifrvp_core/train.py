"""Training engine: one file for every dataset, one process or many (torchrun), exact resume.

    python -m ifrvp_core.train --model_name IFRNet_S --dataset synthetic --max_steps 500
    torchrun --nproc_per_node=4 -m ifrvp_core.train --dataset vimeo90k --data_root /data/vimeo_septuplet
    ifrvp train --config configs/cityscapes.yaml --batch_size 6      # flags win over the file

The seed project's flags and defaults are kept (`--model_name IFRNet --epochs 300
--batch_size 12 --lr_start 1e-4 --lr_end 1e-5 --log_path checkpoint --resume_epoch 0
--resume_path None`). The recipe is IFRNet's: AdamW (no weight decay), cosine LR per iteration
from lr_start to lr_end, Charbonnier + census + geometry + flow distillation.

The extrapolation recipe adds (each a flag, see `TrainConfig`; measured in notebook 06_ablations):
`--motion_prior dis` (the decoders refine a correction of the constant-velocity DIS flow),
`--teacher_flow auto` (prepared teacher flow when present, else DIS from the real target to every
context frame, computed on the fly: distillation never drops out silently); the distillation's
robustness is a flag too (`--loss_distillation_beta`, IFRNet's 0.3 by default). Validation scores
copy-last and DIS extrapolation on the same samples, so a model that collapses to copying shows it
in `log.jsonl`, TensorBoard and `summary.json` (`beats_baselines`).

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

Exit codes: 0 finished; 1 failed (the failing rank prints its error and exits at once, so torchrun
stops the others); 128 + signal (143 SIGTERM, 130 SIGINT) after the current step
was finished and `latest.pt` saved - rerun with `--resume auto` to continue.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import platform
import random
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ifrvp_core.checkpoint import CheckpointError, load_checkpoint, load_file, model_checkpoint, save_atomic, write_text_atomic
from ifrvp_core.data import DataError, build_dataset, loader_batches_per_epoch, make_loader, set_loader_epoch
from ifrvp_core.data.datasets import BAD_SAMPLE_MODES
from ifrvp_core.losses import LossConfig, PredictionLoss
from ifrvp_core.models import build_model

TEACHER_FLOW_MODES = {"auto": "auto_dis", "disk": "disk", "dis": "dis", "none": False}
VAL_SPLITS = {"cityscapes": "val", "davis17": "val"}  # validation split per dataset (default "test")
LOSS_FIELDS = ("charbonnier", "census", "geometry", "distillation", "laplacian", "perceptual", "frequency")


@dataclass
class TrainConfig:
    # the seed project's flags
    model_name: str = "IFRNet"
    epochs: int = 300
    batch_size: int = 12  # per process
    lr_start: float = 1e-4
    lr_end: float = 1e-5
    log_path: str = "checkpoint"
    resume_epoch: int = 0
    resume_path: str | None = None
    # additions
    resume: str | None = None  # "auto": the run folder's latest.pt if it exists
    dataset: str = "synthetic"
    data_root: str | None = None
    # the evaluation protocol the recipe's checkpoint is scored with (`ifrvp evaluate --protocol`); it may
    # be another dataset's (ucf101 trains the davis17 / vimeo90k model). Checked at start, kept in summary.json.
    protocol: str | None = None
    task: str = "extrapolate"
    context_frames: int = 2
    motion_prior: str = "auto"  # none | dis | auto (dis for extrapolation, none for interpolation)
    teacher_flow: str = "auto"  # auto (prepared files, else DIS on the fly) | disk | dis | none
    future_frames: int = 1  # targets per sample; training uses the first (t+1), evaluation tools the rest
    frame_stride: int | None = None
    crop_size: int = 224
    augment: bool = True
    num_workers: int = 2
    seed: int = 0
    amp: str = "none"  # none | bf16 | fp16 (GPU only)
    grad_clip: float = 0.0
    eval_interval: int = 1  # epochs
    max_steps: int = 0  # 0: epochs * steps per epoch
    val_samples: int = 64
    val_batch_size: int = 4
    run_name: str | None = None
    save_interval_steps: int = 0
    log_interval: int = 10
    dist_timeout_min: float = 30.0
    loss_charbonnier: float = 1.0
    loss_census: float = 1.0
    loss_geometry: float = 0.01
    loss_distillation: float = 0.01
    loss_distillation_beta: float = 0.3  # IFRNet's robust weighting; 0 = plain Charbonnier (06_ablations: a tie)
    loss_laplacian: float = 0.0
    loss_perceptual: float = 0.0
    loss_frequency: float = 0.0
    perceptual_weights: str | None = None
    # robustness for long runs
    on_bad_sample: str = "skip"  # skip: replace an unreadable training sample (logged, counted) | fail: stop at once
    max_bad_samples: int = 100  # distinct bad files tolerated; one more stops the run with the list
    max_bad_steps: int = 20  # consecutive non-finite steps (loss or gradient norm) that stop the run

    @property
    def run_dir(self) -> Path:
        """`<log_path>/<run_name>`; without a run name, `<model_name>_<dataset>_<task>`."""
        return Path(self.log_path) / (self.run_name or f"{self.model_name}_{self.dataset}_{self.task}")

    def resolved_motion_prior(self) -> str:
        if self.motion_prior == "auto":
            return "dis" if self.task == "extrapolate" else "none"
        return self.motion_prior

    def loss_config(self) -> LossConfig:
        return LossConfig(**{name: getattr(self, f"loss_{name}") for name in LOSS_FIELDS},
                          distillation_beta=self.loss_distillation_beta, perceptual_weights=self.perceptual_weights)

    @classmethod
    def from_args(cls, argv=None) -> "TrainConfig":
        """Defaults < `--config` file (JSON or YAML) < command-line flags."""
        parser = argparse.ArgumentParser(prog="ifrvp train", description="Train an IFRNet-family model.")
        parser.add_argument("--config", help="JSON or YAML file with any of the keys below")
        for item in dataclasses.fields(cls):
            kind = item.type if isinstance(item.type, type) else str(item.type)
            if kind in (bool, "bool"):
                parser.add_argument(f"--{item.name}", type=_parse_bool, default=None, metavar="BOOL")
            elif kind in (int, "int"):
                parser.add_argument(f"--{item.name}", type=int, default=None)
            elif kind in (float, "float"):
                parser.add_argument(f"--{item.name}", type=float, default=None)
            elif "int" in kind:
                parser.add_argument(f"--{item.name}", type=_optional(int), default=None)
            elif "float" in kind:
                parser.add_argument(f"--{item.name}", type=_optional(float), default=None)
            elif kind in (str, "str"):  # a plain string: "none" is a value here (e.g. --motion_prior none)
                parser.add_argument(f"--{item.name}", type=str, default=None)
            else:
                parser.add_argument(f"--{item.name}", type=_optional(str), default=None)
        args = parser.parse_args(argv)
        values = {}
        if args.config:
            values.update(_read_config_file(args.config))
        values.update({k: v for k, v in vars(args).items() if k != "config" and v is not None})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise SystemExit(f"unknown config keys in {args.config}: {sorted(unknown)}")
        return cls(**values)


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _optional(kind):
    def parse(text):
        return None if text in ("None", "none", "") else kind(text)

    return parse


def _read_config_file(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"config file not found: {path}")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)


class TrainingAborted(RuntimeError):
    """The run hit a robustness limit (`max_bad_samples`, `max_bad_steps`); the message says which and why."""


def _json_number(value: float):
    """A float for JSON: non-finite values as the strings "nan", "inf", "-inf" (strict JSON has none)."""
    value = float(value)
    return value if math.isfinite(value) else str(value)


def nonfinite_weights(model: torch.nn.Module) -> list[str]:
    """Names of the model's floating-point parameters and buffers holding NaN or inf."""
    return [name for name, value in model.state_dict().items() if value.is_floating_point() and not bool(torch.isfinite(value).all())]


# ----------------------------------------------------------------------------- distributed
@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(config: TrainConfig) -> Dist:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size > 1:
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo", timeout=timedelta(minutes=config.dist_timeout_min)
        )
    return Dist(rank, world_size, local_rank, device)


def all_reduce_sum(values: torch.Tensor, env: Dist) -> torch.Tensor:
    if env.world_size > 1:
        values = values.clone()
        dist.all_reduce(values)
    return values


# ----------------------------------------------------------------------------- state
def rng_state() -> dict:
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "python": list(random.getstate()[1]) + [random.getstate()[0], random.getstate()[2]],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state[0], numpy_state[1].numpy().astype(np.uint32), *numpy_state[2:]))
    python = state["python"]
    random.setstate((python[-2], tuple(python[:-2]), python[-1]))


def library_versions() -> dict:
    import torchvision

    return {"python": platform.python_version(), "torch": str(torch.__version__), "torchvision": str(torchvision.__version__), "numpy": str(np.__version__)}


def cosine_lr(iteration: int, total: int, lr_start: float, lr_end: float) -> float:
    """Per-iteration cosine decay from lr_start (iteration 0) to lr_end (iteration total)."""
    progress = min(iteration / max(total, 1), 1.0)
    return lr_end + 0.5 * (lr_start - lr_end) * (1.0 + math.cos(math.pi * progress))


class StopFlag:
    """SIGTERM/SIGINT ask the loop to save `latest` after the current step and exit (code 128 + signal).

    The flag is combined across ranks every step (`should_stop`), so all ranks leave the loop after
    the same iteration even when the signal reaches them at slightly different times.
    """

    def __init__(self):
        self.signal = None
        self._previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (e.g. called from a notebook worker thread)
                pass

    def _handle(self, signum, frame):
        self.signal = signum

    def should_stop(self, env: "Dist") -> bool:
        if env.world_size == 1:
            return self.signal is not None
        flag = torch.tensor([0 if self.signal is None else int(self.signal)], device=env.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self.signal = int(flag.item()) or None
        return self.signal is not None

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def open_tensorboard(run_dir: Path):
    """A SummaryWriter when tensorboard is installed, else None (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


# ----------------------------------------------------------------------------- the trainer
class Trainer:
    def __init__(self, config: TrainConfig, env: Dist):
        self.config, self.env = config, env
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        random.seed(config.seed)
        self.run_dir = config.run_dir
        if config.teacher_flow not in TEACHER_FLOW_MODES:
            raise ValueError(f"teacher_flow must be one of {sorted(TEACHER_FLOW_MODES)}, got {config.teacher_flow!r}")
        if config.on_bad_sample not in BAD_SAMPLE_MODES:
            raise ValueError(f"on_bad_sample must be 'fail' or 'skip', got {config.on_bad_sample!r}")
        if config.max_bad_samples < 0 or config.max_bad_steps < 1:
            raise ValueError(f"max_bad_samples must be >= 0 and max_bad_steps >= 1, got {config.max_bad_samples} and {config.max_bad_steps}")
        options = {} if config.resolved_motion_prior() == "none" else {"motion_prior": config.resolved_motion_prior()}
        model = build_model(config.model_name, context_frames=config.context_frames, **options).to(env.device)
        self.model = model
        self.ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[env.local_rank] if env.device.type == "cuda" else None) if env.world_size > 1 else model
        future = config.future_frames
        common = dict(
            context_frames=config.context_frames, future_frames=future, task=config.task, frame_stride=config.frame_stride, seed=config.seed
        )
        self.train_set = build_dataset(config.dataset, config.data_root, "train", augment=config.augment, crop_size=config.crop_size,
                                       teacher_flow=TEACHER_FLOW_MODES[config.teacher_flow], on_bad_sample=config.on_bad_sample, **common)
        if config.protocol is not None:
            from ifrvp_core.evaluate import get_protocol

            get_protocol(config.protocol)  # an unknown name fails here, not after training
        val_split = VAL_SPLITS.get(config.dataset, "test")
        self.val_set = build_dataset(config.dataset, self.train_set.root, val_split, teacher_flow=False, **common)
        self.val_baselines: dict | None = None  # copy-last / DIS on the validation samples, scored once
        self.loader = make_loader(self.train_set, config.batch_size, True, config.num_workers, config.seed, env.rank, env.world_size)
        self.steps_per_epoch = loader_batches_per_epoch(self.loader)
        full = config.epochs * self.steps_per_epoch
        self.total_steps = min(full, config.max_steps) if config.max_steps else full
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr_start, weight_decay=0.0)
        self.loss_fn = PredictionLoss(config.loss_config())
        self.iteration, self.epoch, self.best_psnr = 0, config.resume_epoch, -math.inf
        # robustness counters, global over ranks, kept in checkpoints: bad file -> iteration first seen,
        # samples replaced, steps skipped (all, and the current run of consecutive ones)
        self.bad_files: dict[str, int] = {}
        self.bad_samples, self.bad_steps, self.bad_steps_in_row = 0, 0, 0
        self.last_latest_iteration: int | None = None  # iteration of the last latest.pt written by this process
        teacher = self.train_set.teacher_source
        self.log_text(f"motion prior: {config.resolved_motion_prior()}; teacher flow: {teacher}; "
                      f"distillation weight {self.loss_fn.config.distillation}, beta {self.loss_fn.config.distillation_beta}")
        if teacher == "none" and self.loss_fn.config.distillation > 0:
            self.log_text("warning: no teacher flow, so the distillation term is off "
                          f"(--teacher_flow {config.teacher_flow}); use --teacher_flow auto or prepare it with data_prep teacher_flow")
        self.history: list[dict] = []
        self.tensorboard = None
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp)
        if self.amp_dtype is not None and env.device.type != "cuda":
            self.log_text(f"warning: --amp {config.amp} needs a GPU; training in float32 on {env.device}")
            self.amp_dtype = None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)
        self._resume()

    # ------------------------------------------------------------------ io
    def log_text(self, text: str) -> None:
        if not self.env.main:
            return
        progress = getattr(self, "progress", None)
        if progress is not None and not progress.disable:
            progress.write(text, file=sys.stdout)  # clears the bar first, so the line is not glued to it
            sys.stdout.flush()
        else:
            print(text, flush=True)

    def _resume(self) -> None:
        config = self.config
        path = config.resume_path
        if config.resume == "auto" and (self.run_dir / "latest.pt").is_file():
            path = str(self.run_dir / "latest.pt")
        if not path:
            return
        state = load_file(path)
        if isinstance(state, dict) and state.get("optimizer") is not None:
            load_checkpoint(self.model, state, source=path)
            self.optimizer.load_state_dict(state["optimizer"])
            self.iteration, self.epoch = int(state["iteration"]), int(state["epoch"])
            self.best_psnr = float(state.get("best_psnr", -math.inf))
            robustness = state.get("robustness") or {}
            self.bad_files = {str(k): int(v) for k, v in (robustness.get("bad_files") or {}).items()}
            self.bad_samples, self.bad_steps = int(robustness.get("bad_samples", 0)), int(robustness.get("bad_steps", 0))
            if Path(path).resolve() == (self.run_dir / "latest.pt").resolve():
                self.last_latest_iteration = self.iteration
            if state.get("rng"):
                set_rng_state(state["rng"])
            self.log_text(f"resumed from {path} at epoch {self.epoch}, iteration {self.iteration}")
        else:  # weights only (e.g. an official IFRNet checkpoint): the seed project's --resume_epoch
            load_checkpoint(self.model, state, source=path)
            self.iteration = self.epoch * self.steps_per_epoch
            self.log_text(f"loaded weights from {path}; starting at epoch {self.epoch}")

    def checkpoint(self, metrics: dict | None = None) -> dict:
        return model_checkpoint(
            self.model,
            optimizer=self.optimizer.state_dict(),
            scheduler={"kind": "cosine", "iteration": self.iteration, "total_steps": self.total_steps},
            epoch=self.epoch,
            iteration=self.iteration,
            best_psnr=self.best_psnr,
            rng=rng_state(),
            config=dataclasses.asdict(self.config),
            versions=library_versions(),
            metrics=metrics or {},
            robustness={"bad_files": dict(self.bad_files), "bad_samples": self.bad_samples, "bad_steps": self.bad_steps},
        )

    def save(self, name: str, metrics: dict | None = None) -> bool:
        """Write `name` atomically (rank 0); a model with non-finite weights is never written (returns False)."""
        if self.env.main:
            broken = nonfinite_weights(self.model)
            if broken:
                self.log_text(f"warning: not writing {self.run_dir / name} at iteration {self.iteration}: non-finite weights in "
                              f"{', '.join(broken[:5])}{' ...' if len(broken) > 5 else ''}")
                return False
            save_atomic(self.checkpoint(metrics), self.run_dir / name)
        if name == "latest.pt":
            self.last_latest_iteration = self.iteration
        return True

    def write_log(self, record: dict) -> None:
        if not self.env.main:
            return
        self.history.append(record)
        with open(self.run_dir / "log.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("iteration", "epoch"):
                    self.tensorboard.add_scalar(f"{record['kind']}/{key}", value, record["iteration"])
            for key, value in record.get("terms", {}).items():
                self.tensorboard.add_scalar(f"loss/{key}", value, record["iteration"])
        if record["kind"] == "train":
            csv_path = self.run_dir / "log.csv"
            flat = {k: v for k, v in record.items() if not isinstance(v, dict)} | record.get("terms", {})
            new = not csv_path.exists()
            with open(csv_path, "a", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(flat))
                if new:
                    writer.writeheader()
                writer.writerow(flat)

    # ------------------------------------------------------------------ steps
    def train_step(self, batch: dict) -> tuple[float, dict, bool]:
        """One optimiser step on target[:, 0] at target_times[:, 0], unless the step is not finite.

        After backward (and AMP unscaling) the gradient norm is computed (and clipped with
        `--grad_clip`); when this rank's loss or the norm is NaN/inf on any rank, every rank skips
        the optimiser step together (the fp16 scaler still lowers its scale). The check costs one
        host sync per step (as the fp16 scaler's own check does).

        Args:
            batch: `context` (B,K,3,H,W), `target` (B,n,3,H,W), `target_times` (B,n), optional
                `teacher_flow` (B,2K,H,W) for the distillation term.
        Returns:
            (lr used, {"loss": total, **terms, "grad_norm": norm} as detached scalars of this rank,
            whether the step was taken).
        """
        device = self.env.device
        frames = batch["context"].to(device, non_blocking=True)
        target = batch["target"][:, 0].to(device, non_blocking=True)
        times = batch["target_times"][:, 0].to(device)
        teacher = batch["teacher_flow"].to(device) if "teacher_flow" in batch else None
        lr = cosine_lr(self.iteration, self.total_steps, self.config.lr_start, self.config.lr_end)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            output = self.ddp(frames, times, target=target)
            loss, terms = self.loss_fn(output, target, teacher)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # a no-op without the fp16 scaler
        if self.config.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        else:
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            grad_norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=device)
        loss = loss.detach()
        bad = (~(torch.isfinite(loss) & torch.isfinite(grad_norm))).float().reshape(1)
        if self.env.world_size > 1:  # the loss is per rank: all ranks skip together
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        ok = not bool(bad.item())
        if ok:
            self.scaler.step(self.optimizer)
        self.scaler.update()  # after a skipped fp16 step: lowers the scale (unscale_ recorded the infs)
        return lr, {"loss": loss, **terms, "grad_norm": grad_norm.detach()}, ok

    def note_bad_samples(self, batch: dict) -> None:
        """Count and log (once per file) the samples this step's batches replaced, over all ranks.

        Raises:
            TrainingAborted: more than `max_bad_samples` distinct bad files.
        """
        local = [name for names in batch.get("skipped_files", []) for name in names]
        if self.env.world_size > 1:
            if all_reduce_sum(torch.tensor([len(local)], device=self.env.device), self.env).item() == 0:
                return
            gathered: list = [None] * self.env.world_size
            dist.all_gather_object(gathered, local)
            files = [name for part in gathered for name in part]
        else:
            files = local
        if not files:
            return
        self.bad_samples += len(files)
        for name in files:
            if name not in self.bad_files:
                self.bad_files[name] = self.iteration + 1
                self.log_text(f"warning: skipped a bad sample at iteration {self.iteration + 1}: {name} "
                              f"(bad file {len(self.bad_files)}, at most {self.config.max_bad_samples}); "
                              "replaced by the next sample of this epoch's order")
                self.write_log({"kind": "bad_sample", "iteration": self.iteration + 1, "epoch": self.epoch, "file": name})
        if len(self.bad_files) > self.config.max_bad_samples:
            listed = "\n  ".join(sorted(self.bad_files))
            self.write_log({"kind": "stopped", "iteration": self.iteration, "epoch": self.epoch, "reason": "max_bad_samples",
                            "bad_files": sorted(self.bad_files), "bad_samples": self.bad_samples})
            raise TrainingAborted(f"{len(self.bad_files)} bad files (more than --max_bad_samples {self.config.max_bad_samples}); "
                                  f"fix or remove them, or raise the limit:\n  {listed}")

    def note_bad_step(self, terms: dict) -> None:
        """Count and log a skipped (non-finite) step.

        Raises:
            TrainingAborted: `max_bad_steps` in a row; latest.pt keeps the last good state.
        """
        self.bad_steps += 1
        self.bad_steps_in_row += 1
        loss, norm = float(terms["loss"]), float(terms["grad_norm"])
        self.log_text(f"warning: non-finite step at iteration {self.iteration} (loss {loss}, gradient norm {norm}): "
                      f"optimiser step skipped ({self.bad_steps_in_row} in a row, at most {self.config.max_bad_steps})")
        self.write_log({"kind": "bad_step", "iteration": self.iteration, "epoch": self.epoch, "loss": _json_number(loss),
                        "grad_norm": _json_number(norm), "in_a_row": self.bad_steps_in_row, "bad_steps": self.bad_steps})
        if self.bad_steps_in_row >= self.config.max_bad_steps:
            first = self.iteration - self.bad_steps_in_row + 1
            kept = (f"{self.run_dir / 'latest.pt'} holds iteration {self.last_latest_iteration}, the last good state"
                    if self.last_latest_iteration is not None else "no latest.pt was written by this run")
            self.write_log({"kind": "stopped", "iteration": self.iteration, "epoch": self.epoch, "reason": "max_bad_steps",
                            "bad_steps": self.bad_steps, "latest_iteration": self.last_latest_iteration})
            raise TrainingAborted(f"{self.bad_steps_in_row} non-finite steps in a row (iterations {first}..{self.iteration}, "
                                  f"--max_bad_steps {self.config.max_bad_steps}; last loss {loss}, gradient norm {norm}); {kept}. "
                                  "Try a lower --lr_start, --grad_clip 1 or --amp bf16/none, then --resume auto")

    @torch.no_grad()
    def validate(self) -> dict:
        """PSNR/SSIM of t+1 over the first `val_samples` validation windows, split across ranks and averaged.

        For extrapolation the baselines copy-last and DIS extrapolation are scored on the same
        samples (once: they do not change) and returned as `copy_last_psnr`, `dis_extrapolation_ssim`, ...
        """
        from ifrvp_core.evaluate import standard_methods
        from ifrvp_core.metrics import psnr, ssim

        self.model.eval()
        count = min(len(self.val_set), self.config.val_samples)
        indices = list(range(self.env.rank, count, self.env.world_size))
        baselines = standard_methods(model=None) if self.config.task == "extrapolate" else {}
        score_baselines = self.val_baselines is None
        sums = torch.zeros(1 + 2 * (1 + len(baselines)), dtype=torch.float64)  # count, then (psnr, ssim) per method

        def scores(prediction, target):
            prediction = prediction.float().clamp(0, 1)
            return [psnr(prediction, target).sum().item(), ssim(prediction, target).sum().item()]

        for start in range(0, len(indices), self.config.val_batch_size):
            samples = [self.val_set[i] for i in indices[start : start + self.config.val_batch_size]]
            frames = torch.stack([s["context"] for s in samples]).to(self.env.device)
            target = torch.stack([s["target"][0] for s in samples]).to(self.env.device)
            times = torch.stack([s["target_times"][0] for s in samples]).to(self.env.device)
            values = [len(samples)] + scores(self.model(frames, times)["prediction"], target)
            for baseline in baselines.values():
                values += scores(baseline(frames), target) if score_baselines else [0.0, 0.0]
            sums += torch.tensor(values, dtype=torch.float64)
        self.model.train()
        sums = all_reduce_sum(sums.to(self.env.device), self.env).cpu()
        mean = (sums[1:] / sums[0]).tolist()
        if score_baselines:
            self.val_baselines = {name: {"psnr": mean[2 + 2 * i], "ssim": mean[3 + 2 * i]} for i, name in enumerate(baselines)}
        metrics = {"psnr": mean[0], "ssim": mean[1], "samples": int(sums[0])}
        for name, values in self.val_baselines.items():
            metrics[f"{name}_psnr"], metrics[f"{name}_ssim"] = values["psnr"], values["ssim"]
        return metrics

    def beats_baselines(self, metrics: dict) -> dict:
        """{baseline: {"psnr": bool, "ssim": bool}}: whether the model scores higher on the validation samples."""
        return {
            name: {metric: bool(metrics[metric] > values[metric]) for metric in ("psnr", "ssim")}
            for name, values in (self.val_baselines or {}).items()
            if "psnr" in metrics
        }

    def run(self) -> dict:
        config, env = self.config, self.env
        if env.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.run_dir / "config.json", json.dumps(dataclasses.asdict(config), indent=1))
            self.tensorboard = open_tensorboard(self.run_dir)
        self.log_text(
            f"run folder {self.run_dir}\n{config.model_name} on {config.dataset} ({len(self.train_set)} train / "
            f"{len(self.val_set)} val samples), {env.world_size} process(es) on {env.device}, "
            f"batch {config.batch_size}/process, {self.steps_per_epoch} steps/epoch, {self.total_steps} steps"
        )
        stop = StopFlag()
        started = time.time()
        from tqdm.auto import tqdm

        # without a terminal (logs, notebooks, papermill) a bar line every 30 s is plenty
        progress = tqdm(total=self.total_steps, initial=self.iteration, disable=not env.main, desc="train",
                        mininterval=1.0 if sys.stderr.isatty() else 30.0, file=sys.stderr)
        self.progress = progress
        self.model.train()
        metrics: dict = {}
        while self.iteration < self.total_steps and self.epoch < config.epochs:
            skip = self.iteration - self.epoch * self.steps_per_epoch
            set_loader_epoch(self.loader, self.epoch, skip_batches=max(skip, 0))
            wait_start = time.perf_counter()
            window = {"samples": 0, "time": 0.0, "wait": 0.0}
            for batch in self.loader:
                waited = time.perf_counter() - wait_start
                step_start = time.perf_counter()
                self.note_bad_samples(batch)
                lr, terms, ok = self.train_step(batch)
                self.iteration += 1  # a skipped step still consumes its batch and moves the LR schedule on
                if ok:
                    self.bad_steps_in_row = 0
                else:
                    self.note_bad_step(terms)
                grad_norm = terms.pop("grad_norm")
                step_time = time.perf_counter() - step_start
                window["samples"] += batch["context"].shape[0] * env.world_size
                window["time"] += step_time + waited
                window["wait"] += waited
                progress.update(1)
                if self.iteration % config.log_interval == 0 or self.iteration == self.total_steps:
                    values = all_reduce_sum(torch.stack([v.float() for v in terms.values()]).cpu(), env) / env.world_size
                    record = {
                        "kind": "train", "iteration": self.iteration, "epoch": self.epoch, "lr": lr,
                        "loss": values[0].item(), "terms": {k: v.item() for k, v in zip(list(terms)[1:], values[1:])},
                        "samples_per_s": window["samples"] / max(window["time"], 1e-9),
                        "data_wait_share": window["wait"] / max(window["time"], 1e-9),
                        "elapsed_s": time.time() - started, "grad_norm": grad_norm.item(),
                        "bad_samples": self.bad_samples, "bad_files": len(self.bad_files), "bad_steps": self.bad_steps,
                    }
                    self.write_log(record)
                    progress.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}", refresh=False)
                    window = {"samples": 0, "time": 0.0, "wait": 0.0}
                if config.save_interval_steps and self.iteration % config.save_interval_steps == 0 and ok:
                    self.save("latest.pt")  # not after a skipped step: latest.pt is the state after a good one
                if stop.should_stop(env) or self.iteration >= self.total_steps:
                    break
                wait_start = time.perf_counter()
            if stop.signal is not None:
                self.save("latest.pt")
                self.log_text(f"signal {stop.signal}: saved {self.run_dir / 'latest.pt'} at iteration {self.iteration}")
                progress.close()
                stop.restore()
                return {"stopped_by_signal": stop.signal, "iteration": self.iteration}
            epoch_done = self.iteration >= (self.epoch + 1) * self.steps_per_epoch
            finished = self.iteration >= self.total_steps
            if epoch_done:
                self.epoch += 1
            if config.val_samples > 0 and (finished or (epoch_done and self.epoch % config.eval_interval == 0)):
                metrics = self.validate()
                self.write_log({"kind": "val", "iteration": self.iteration, "epoch": self.epoch, **metrics})
                baselines = "".join(f"; {name} {values['psnr']:.3f} / {values['ssim']:.4f}" for name, values in (self.val_baselines or {}).items())
                self.log_text(f"epoch {self.epoch} iteration {self.iteration}: val PSNR {metrics['psnr']:.3f} SSIM {metrics['ssim']:.4f}{baselines}")
                if math.isfinite(metrics["psnr"]) and metrics["psnr"] > self.best_psnr:
                    self.best_psnr = metrics["psnr"]
                    self.save("best.pt", metrics)
            self.save("latest.pt", metrics)
        progress.close()
        stop.restore()
        if self.tensorboard is not None:
            self.tensorboard.close()
        summary = {
            "run_dir": str(self.run_dir.resolve()), "model_name": config.model_name, "dataset": config.dataset,
            "iterations": self.iteration, "epochs": self.epoch, "world_size": env.world_size,
            "wall_time_s": time.time() - started, "final": metrics, "best_psnr": self.best_psnr if math.isfinite(self.best_psnr) else None,
            "motion_prior": config.resolved_motion_prior(), "teacher_flow": self.train_set.teacher_source, "protocol": config.protocol,
            "baselines": self.val_baselines or {}, "beats_baselines": self.beats_baselines(metrics),
            "bad_samples": self.bad_samples, "bad_files": sorted(self.bad_files), "bad_steps": self.bad_steps,
        }
        if self.bad_files or self.bad_steps:
            self.log_text(f"robustness: {self.bad_samples} sample(s) replaced ({len(self.bad_files)} bad file(s)), "
                          f"{self.bad_steps} non-finite step(s) skipped; see kind 'bad_sample' / 'bad_step' in log.jsonl")
        for name, beats in summary["beats_baselines"].items():
            if not beats["psnr"]:
                self.log_text(f"warning: the model does not beat {name} on the validation samples "
                              f"(PSNR {metrics['psnr']:.3f} vs {summary['baselines'][name]['psnr']:.3f}): not a video predictor yet")
        if env.main:
            write_text_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=1))
        return summary


def main(argv=None) -> int:
    """Train; returns the exit code: 0 done, 1 failed (on any rank), 128 + signal when stopped by SIGTERM/SIGINT.

    A failing rank prints its error and exits non-zero at once, so torchrun tears the job down
    instead of leaving the other ranks blocked in a collective (they would otherwise time out
    after `--dist_timeout_min`). Under torchrun the process ends with `os._exit` after an orderly
    teardown: interpreter finalisation with live gloo/DDP objects can abort (SIGABRT) a rank that
    finished its work, which would turn a good run into a failed job.
    """
    config = TrainConfig.from_args(argv)
    env = setup_distributed(config)
    failed = False
    try:
        trainer = Trainer(config, env)
        summary = trainer.run()
        if "stopped_by_signal" in summary:
            code = 128 + int(summary["stopped_by_signal"])
        else:
            if env.main:
                print("IFRVP_SUMMARY " + json.dumps(summary), flush=True)
            code = 0
        del trainer
    except Exception as error:  # noqa: BLE001 - any failure must end this rank with a clear message
        print(f"[rank {env.rank}] training failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        if not isinstance(error, (CheckpointError, ValueError, FileNotFoundError, TrainingAborted, DataError)):
            traceback.print_exc()
        code, failed = 1, True
    if env.world_size > 1 and dist.is_initialized():
        if not failed:
            import gc

            gc.collect()  # free DDP's reducer and pending work while the interpreter is fully alive
            dist.barrier()  # rank 0 may still be writing checkpoints; tear down together
            dist.destroy_process_group()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
