"""The workbook's profiles and the files through which the numbered notebooks hand work on.

Profiles (the notebooks' `profile` parameter; any knob can still be overridden one by one):
- `tiny`: seconds per notebook, for the tests.
- `quick`: the default; minutes on a 2-core CPU with the built-in synthetic data, including a
  real 2-process DDP training run whose model beats copy-last-frame.
- `full`: the real datasets (`data_root` required) on every GPU of the machine, with the
  dataset's recipe `configs/<dataset>.yaml` when one ships (cityscapes, gopro, kitti, ucf101),
  else IFRNet's schedule (300 epochs, batch 12 per process, lr 1e-4 -> 1e-5). The order of
  precedence is in `ifrvp_core.workbook.recipes`: profile < config file < explicit parameters.

Every notebook reads and writes one work folder (`work_dir`, default
`<repo>/workbook_runs/<profile>`): notebook 01 writes `dataset.json`, notebook 03 `training.json`,
and the later notebooks find the data and the trained checkpoint through them unless their
parameters name them.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch

from ifrvp_core.checkpoint import write_text_atomic

# The source checkout this package lives in (its notebooks/ folder holds the numbered notebooks).
REPO = Path(__file__).resolve().parents[2]

PROFILES: dict[str, dict] = {
    "tiny": dict(
        dataset="synthetic", synthetic=dict(train_clips=4, test_clips=2, num_frames=8, height=48, width=64),
        model_name="IFRNet_T", nproc=2, max_steps=4, epochs=1000, batch_size=2, crop_size=32, num_workers=0,
        lr_start=5e-4, lr_end=1e-5, val_samples=4, log_interval=1, eval_steps=3, eval_max_samples=4,
        train_options=dict(prior_shift_input=True),
        latency_sizes=[(48, 64), (96, 128)], latency_repeats=1, show_samples=2, rollout_steps=3,
        ablation=dict(max_steps=3, batch_size=2, crop_size=32, val_samples=2, eval_steps=3, eval_max_samples=4),
        ablation_real=dict(model_name="IFRNet_T", max_steps=2, batch_size=2, crop_size=32, val_samples=0, eval_steps=3,
                           eval_max_samples=2),
        use_dataset_config=False,
    ),
    "quick": dict(
        dataset="synthetic", synthetic=dict(train_clips=48, test_clips=24, num_frames=12, height=128, width=192),
        model_name="IFRNet_T", nproc=2, max_steps=700, epochs=1000, batch_size=4, crop_size=96, num_workers=1,
        lr_start=5e-4, lr_end=1e-5, val_samples=48, log_interval=10, eval_steps=5, eval_max_samples=None,
        # the decoders see the prior's shift (docs/learning.md: +1.09 dB over prior_only at t+1 against +0.12 without)
        train_options=dict(prior_shift_input=True),
        latency_sizes=[(128, 192), (256, 448)], latency_repeats=3, show_samples=3, rollout_steps=5,
        # notebook 06: every variant gets the same single-process budget on notebook 01's data
        ablation=dict(max_steps=300, batch_size=4, crop_size=96, val_samples=8, eval_steps=5, eval_max_samples=None),
        # notebook 06's real column: the README's real model, batch and crop; 300 of its 1500 steps (real_max_steps=1500
        # gives the full budget: about 30 min per variant on a 2-core CPU)
        ablation_real=dict(model_name="IFRNet_S", max_steps=300, batch_size=4, crop_size=128, val_samples=8, eval_steps=3,
                           eval_max_samples=None),
        # a CPU budget: a dataset's configs/ recipe (256 crops, 300 epochs) is used only when named by `config`
        use_dataset_config=False,
    ),
    "full": dict(
        dataset="vimeo90k", synthetic=dict(), model_name="IFRNet", nproc=None, max_steps=0, epochs=300, batch_size=12,
        crop_size=224, num_workers=4, lr_start=1e-4, lr_end=1e-5, val_samples=1000, log_interval=100, eval_steps=5,
        eval_max_samples=None, latency_sizes=[(256, 448), (1024, 2048)], latency_repeats=5, show_samples=4,
        rollout_steps=5, ablation=dict(max_steps=20000, batch_size=12, crop_size=224, val_samples=200, eval_steps=5, eval_max_samples=None),
        ablation_real=dict(model_name="IFRNet_S", max_steps=1500, batch_size=4, crop_size=128, val_samples=8, eval_steps=3,
                           eval_max_samples=None),
        use_dataset_config=True,  # configs/<dataset>.yaml when it ships (recipes.training_recipe)
    ),
}


def profile_settings(profile: str, **overrides) -> dict:
    """The profile's settings with `overrides` (None values are ignored) applied on top."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    settings = copy.deepcopy(PROFILES[profile])
    settings["profile"] = profile
    settings.update({key: value for key, value in overrides.items() if value is not None})
    if settings.get("nproc") is None:  # full profile: every GPU, else one process
        settings["nproc"] = max(torch.cuda.device_count(), 1)
    return settings


# ----------------------------------------------------------------------------- the work folder
def default_work_dir(profile: str) -> Path:
    """`<repo>/workbook_runs/<profile>` for a source checkout, else `./workbook_runs/<profile>`."""
    base = REPO if (REPO / "notebooks").is_dir() else Path.cwd()
    return base / "workbook_runs" / profile


def resolve_work_dir(work_dir, profile: str) -> Path:
    path = Path(work_dir) if work_dir else default_work_dir(profile)
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def synthetic_data_root(work_dir) -> Path:
    """Where notebook 01 generates the built-in synthetic set (notebook 06 finds it, or makes it, there too)."""
    return Path(work_dir) / "data" / "synthetic"


def set_aside_old_run(log_path, run_name: str, resume: str | None) -> Path:
    """The run folder for a new run; an older run of the same name is renamed (never overwritten)."""
    run_dir = Path(log_path) / run_name
    if run_dir.exists() and resume != "auto":
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(run_dir.stat().st_mtime))
        target = run_dir.with_name(f"{run_name}-{stamp}")
        counter = 1
        while target.exists():
            target = run_dir.with_name(f"{run_name}-{stamp}-{counter}")
            counter += 1
        run_dir.rename(target)
        print(f"an earlier run was moved to {target}")
    return run_dir


# ----------------------------------------------------------------------------- the hand-off files
def write_json(path, obj) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=1, default=str))


def read_json(path, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} (run the earlier notebook first, or pass its path as a parameter)")
    return json.loads(path.read_text())


def dataset_info(work_dir, dataset=None, data_root=None) -> dict:
    """Which data to use: explicit parameters win, else what notebook 01 wrote to `work_dir/dataset.json`."""
    if data_root is not None:
        return {"dataset": dataset or "synthetic", "data_root": str(data_root)}
    info = read_json(Path(work_dir) / "dataset.json", "dataset.json written by 01_data_preparation")
    if dataset is not None and dataset != info["dataset"]:
        raise ValueError(f"dataset={dataset!r} but {Path(work_dir) / 'dataset.json'} describes {info['dataset']!r}; pass data_root too")
    return info


def trained_checkpoint(work_dir, checkpoint=None) -> Path:
    """The checkpoint to study: the parameter if given, else the best one of notebook 03's run."""
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint parameter: file not found: {path}")
        return path
    info = read_json(Path(work_dir) / "training.json", "training.json written by 03_training_ddp")
    return Path(info["checkpoint"])


__all__ = [
    "PROFILES", "REPO", "dataset_info", "default_work_dir", "profile_settings", "read_json", "resolve_work_dir",
    "set_aside_old_run", "synthetic_data_root", "trained_checkpoint", "write_json",
]
