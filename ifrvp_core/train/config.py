"""The training configuration: `TrainConfig`, its checks, and how it is read (defaults < file < flags).

    config = TrainConfig.from_args(["--config", "configs/gopro.yaml", "--batch_size", "6"])
    config.check()                                   # ValueError naming a bad value
    build_model(config.model_name, **config.model_options())

The other parts of the project each get their slice of the config from one method here
(`model_options`, `train_data_options` / `val_data_options`, `loss_config`), so no caller picks
fields by hand.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from ifrvp_core.data.datasets import BAD_SAMPLE_MODES
from ifrvp_core.evaluate import get_protocol
from ifrvp_core.losses import LossConfig

TEACHER_FLOW_MODES = {"auto": "auto_dis", "disk": "disk", "dis": "dis", "none": False}
VAL_SPLITS = {"cityscapes": "val", "davis17": "val"}  # validation split per dataset (default "test")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}  # --amp values that autocast (on a GPU); "none": float32
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
    flow_region: str = "crop"  # crop | frame: DIS prior and teacher on the training crop, or on the full frame before augmentation
    future_frames: int = 1  # targets per sample; training uses the first (t+1), evaluation tools the rest
    frame_stride: int | None = None
    # `frames` training windows at frame strides 1..N x frame_stride: N times the footage's motion
    motion_strides: int = 1
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

    def check(self) -> None:
        """Refuse values the trainer cannot run with, before anything is built.

        Raises:
            ValueError: naming the field and the bad value (an unknown `protocol` too, so it fails
                here, not after training).
        """
        if self.teacher_flow not in TEACHER_FLOW_MODES:
            raise ValueError(f"teacher_flow must be one of {sorted(TEACHER_FLOW_MODES)}, got {self.teacher_flow!r}")
        if self.on_bad_sample not in BAD_SAMPLE_MODES:
            raise ValueError(f"on_bad_sample must be 'fail' or 'skip', got {self.on_bad_sample!r}")
        if self.max_bad_samples < 0 or self.max_bad_steps < 1:
            raise ValueError(f"max_bad_samples must be >= 0 and max_bad_steps >= 1, got {self.max_bad_samples} and {self.max_bad_steps}")
        if self.protocol is not None:
            get_protocol(self.protocol)

    # ------------------------------------------------------------------ the slices other parts take
    def resolved_motion_prior(self) -> str:
        if self.motion_prior == "auto":
            return "dis" if self.task == "extrapolate" else "none"
        return self.motion_prior

    def model_options(self) -> dict:
        """`build_model(model_name, **options)` keywords: context frames and, when one is used, the motion prior."""
        prior = self.resolved_motion_prior()
        return {"context_frames": self.context_frames, **({} if prior == "none" else {"motion_prior": prior})}

    def data_options(self) -> dict:
        """`build_dataset` keywords both splits share: the window layout, the task and the seed."""
        return dict(context_frames=self.context_frames, future_frames=self.future_frames, task=self.task,
                    frame_stride=self.frame_stride, seed=self.seed)

    def train_data_options(self) -> dict:
        """`build_dataset(dataset, data_root, "train", **options)` keywords: augmentation, teacher flow, bad samples."""
        return dict(augment=self.augment, crop_size=self.crop_size, teacher_flow=TEACHER_FLOW_MODES[self.teacher_flow],
                    on_bad_sample=self.on_bad_sample, motion_strides=self.motion_strides, flow_region=self.flow_region,
                    prior_flow=self.resolved_motion_prior() != "none", **self.data_options())

    @property
    def val_split(self) -> str:
        return VAL_SPLITS.get(self.dataset, "test")

    def val_data_options(self) -> dict:
        """`build_dataset(dataset, root, val_split, **options)` keywords: full frames, no teacher flow."""
        return dict(teacher_flow=False, **self.data_options())

    def loss_config(self) -> LossConfig:
        return LossConfig(**{name: getattr(self, f"loss_{name}") for name in LOSS_FIELDS},
                          distillation_beta=self.loss_distillation_beta, perceptual_weights=self.perceptual_weights)

    def total_steps(self, steps_per_epoch: int) -> int:
        """`epochs` x `steps_per_epoch`, or `max_steps` when that is set and smaller."""
        full = self.epochs * steps_per_epoch
        return min(full, self.max_steps) if self.max_steps else full

    def to_dict(self) -> dict:
        """Every field (what config.json and the checkpoints keep)."""
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_args(cls, argv=None) -> "TrainConfig":
        """Defaults < `--config` file (JSON or YAML) < command-line flags."""
        args = argument_parser(cls).parse_args(argv)
        values = {}
        if args.config:
            values.update(read_config_file(args.config))
        values.update({k: v for k, v in vars(args).items() if k != "config" and v is not None})
        unknown = cls.unknown_keys(values)
        if unknown:
            raise SystemExit(f"unknown config keys in {args.config}: {unknown}")
        return cls(**values)

    @classmethod
    def unknown_keys(cls, values) -> list[str]:
        """The keys of `values` that are no field of this config, sorted."""
        known = {f.name for f in dataclasses.fields(cls)}
        return sorted(set(values) - known)


def argument_parser(config_class=TrainConfig) -> argparse.ArgumentParser:
    """`--config FILE` and one flag per field of `config_class`, typed by the field (every default None: unset)."""
    parser = argparse.ArgumentParser(prog="ifrvp train", description="Train an IFRNet-family model.")
    parser.add_argument("--config", help="JSON or YAML file with any of the keys below")
    for item in dataclasses.fields(config_class):
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
    return parser


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


def read_config_file(path) -> dict:
    """The keys of a JSON or YAML (`.yaml`, `.yml`) config file; SystemExit naming a missing file."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"config file not found: {path}")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        return yaml.safe_load(text) or {}
    return json.loads(text)
