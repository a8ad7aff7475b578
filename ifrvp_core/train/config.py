"""The training configuration: `TrainConfig`, its checks, and how it is read (defaults < file < flags).

    config = TrainConfig.from_args(["--config", "configs/gopro.yaml", "--batch_size", "6"])
    config.check()                                   # ValueError naming a bad value
    build_model(config.model_name, **config.model_options())

Every field carries its help text (and, where the values are a fixed set, its choices) as dataclass
field metadata: `argument_parser` builds `--help` from it, `check` validates against it, and the
YAML/JSON config keys are the field names. The other parts of the project each get their slice of
the config from one method here (`model_options`, `train_data_options` / `val_data_options`,
`loss_config`), so no caller picks fields by hand.

This module imports no torch, torchvision or OpenCV at module level, so that `ifrvp train --help`
and a mistyped flag answer at once; the few methods that need the heavy modules (`check`,
`loss_config`, `resolved_crop_size`) import them when called.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ifrvp_core.registry_names import DATASET_NAMES, MODEL_NAMES

TEACHER_FLOW_MODES = {"auto": "auto_dis", "disk": "disk", "dis": "dis", "none": False}
VAL_SPLITS = {"cityscapes": "val", "davis17": "val"}  # validation split per dataset (default "test")
AMP_MODES = ("none", "bf16", "fp16")  # the trainer maps bf16 / fp16 to autocast dtypes (on a GPU); "none": float32
LOSS_FIELDS = ("charbonnier", "census", "geometry", "distillation", "laplacian", "perceptual", "frequency", "boundary", "rmse")
# These mirror lists of modules that import torch, so that `--help` shows them without torch;
# tests/test_train_cli.py checks that they equal the originals (model and dataset names: `registry_names`).
BAD_SAMPLE_CHOICES = ("skip", "fail")
TASKS = ("extrapolate", "interpolate")
MOTION_PRIORS = ("auto", "none", "dis", "lucas_kanade")
FLOW_REGIONS = ("crop", "frame")  # ifrvp_core.data.sample.FLOW_REGIONS
IFRNET_CROP = 224  # IFRNet's training crop: the default for datasets on disk
IFRNET_LR_START = 1e-4  # IFRNet's published learning rate (300 GPU epochs of interpolation)
PRIOR_LR_START = 5e-4  # with a motion prior: the rate at which its corrections learn in a CPU budget (docs/learning.md)
# Fields whose None means "auto" (the task's default); a config file may spell it `auto`.
AUTO_FIELDS = ("crop_size", "lr_start", "loss_charbonnier", "loss_rmse")
# What a run folder holds once a run has started in it (written by `RunLog` and the checkpoints).
RUN_FILES = ("config.json", "log.jsonl", "log.csv", "summary.json", "latest.pt", "best.pt", "tensorboard")


class ConfigError(ValueError):
    """A bad configuration value; the message names the flag (or the config file's key) and the valid values."""


def option(default, help: str, choices=None, parse=None, metavar=None):
    """A `TrainConfig` field with its `--help` text, its valid values and (optionally) its own argument parser."""
    metadata = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if parse is not None:
        metadata["parse"] = parse
    if metavar is not None:
        metadata["metavar"] = metavar
    return field(default=default, metadata=metadata)


def auto_or(convert, error: str):
    """An argparse type for a flag that takes a value or "auto" / "none" / "" (the default).

    It returns "auto", not None, for those: a flag's None means "not given", and a given auto must
    win over a config file (`TrainConfig` then makes it None). `error` names the valid values, with
    `{!r}` where the text goes.
    """
    def parse(text: str):
        if text.lower() in ("auto", "none", ""):
            return "auto"
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(error.format(text)) from None
    return parse


# `--crop_size`: a positive integer, or auto for the per-dataset default
parse_crop_size = auto_or(int, "expected a positive integer or 'auto', got {!r}")
# `--lr_start`: a positive number, or auto for the task's default
parse_lr = auto_or(float, "expected a learning rate such as 5e-4, or 'auto'; got {!r}")
# `--loss_charbonnier` / `--loss_rmse`: a weight, or auto for the recipe's reconstruction term
parse_weight = auto_or(float, "expected a loss weight such as 1 or 0, or 'auto'; got {!r}")


def is_real_number(value) -> bool:
    """An int or float, not a bool (YAML's `yes` reads as True, which Python counts as 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def choice_error(label: str, value, choices) -> str:
    """"<label> must be one of a, b, c; got 'x'", with a "did you mean" for a near miss."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{label} must be one of {', '.join(str(c) for c in choices)}; got {value!r}{hint}"


@dataclass
class TrainConfig:
    """Every training option; the field names are the flags (`--name`, also `--na-me`) and the config file's keys."""

    # the seed project's flags
    model_name: str = option("IFRNet", "the network (case does not matter)", choices=MODEL_NAMES)
    epochs: int = option(300, "passes over the training set (the run also stops at --max_steps)")
    batch_size: int = option(12, "samples per step and per process")
    lr_start: float | None = option(None, "learning rate at step 0 (cosine decay per step to --lr_end); auto: 5e-4 for "
                                          "extrapolation with a motion prior (docs/learning.md), IFRNet's 1e-4 otherwise",
                                    metavar="LR|auto", parse=parse_lr)
    lr_end: float = option(1e-5, "learning rate at the last step")
    log_path: str = option("checkpoint", "folder that holds the run folders (<log_path>/<run_name>)")
    resume_epoch: int = option(0, "epoch to start at when --resume_path holds weights only (the seed project's flag)")
    resume_path: str | None = option(None, "checkpoint to start from: a training checkpoint continues its run, "
                                           "a weights-only file (e.g. an official IFRNet one) starts at --resume_epoch")
    # additions
    resume: str | None = option(None, "continue the run in the run folder: 'auto' (its latest.pt, or a fresh start "
                                      "when there is none yet) or the path of a training checkpoint", metavar="auto|PATH")
    init_from: str | None = option(None, "start from these weights instead of random ones: an official IFRNet file, an "
                                         "IFRVP checkpoint or a packaged model's name, of the same variant and context "
                                         "frames; from weights without a motion prior (official IFRNet) the output layers "
                                         "restart at zero, so training still starts at the prior; a run continued with "
                                         "--resume keeps its own weights", metavar="PATH")
    overwrite: bool = option(False, "start afresh in a run folder that already holds a run, deleting that run's "
                                    "logs and checkpoints (without it, or --resume, such a folder is refused)")
    dataset: str = option("synthetic", "training data layout; synthetic is generated on first use", choices=DATASET_NAMES)
    data_root: str | None = option(None, "dataset folder (synthetic: optional, default a generated cache folder)")
    protocol: str | None = option(None, "the evaluation protocol the checkpoint is scored with (ifrvp evaluate "
                                        "--protocol); may be another dataset's; checked at start, kept in summary.json")
    task: str = option("extrapolate", "predict the next frames, or interpolate between the context frames", choices=TASKS)
    context_frames: int = option(2, "input frames per sample")
    motion_prior: str = option("auto", "flow the decoders refine: dis (constant-velocity OpenCV DIS flow, computed in the "
                                       "loader workers), lucas_kanade (constant-velocity torch Lucas-Kanade flow, computed "
                                       "by the model on its device), none, or auto (dis for extrapolation, none for "
                                       "interpolation)", choices=MOTION_PRIORS)
    prior_shift_input: bool = option(True, "with a motion prior, the decoders also see how the prior changes where each "
                                           "target pixel came from (zero for uniform motion; large at motion boundaries); "
                                           "ignored with --motion_prior none; false: the decoders see only the aligned "
                                           "features, as before 2026-12")
    prior_shift_gate: bool = option(False, "with a motion prior, decoder1 also learns a gate g per pixel and the flow gets "
                                           "g times the prior's shift (g = 1: the prior sampled where the target pixel came "
                                           "from); g starts at 0, so training starts at the prior; ignored with "
                                           "--motion_prior none")
    teacher_flow: str = option("auto", "teacher flow for the distillation loss: auto (a synthetic clip's exact flow, "
                                       "else prepared files, else DIS on the fly), "
                                       "disk (prepared files only), dis (on the fly), none", choices=tuple(TEACHER_FLOW_MODES))
    flow_region: str = option("crop", "where the training DIS prior and on-the-fly teacher flow are computed: crop (on "
                                      "the final training crop) or frame (on the whole frame, before the augmentations, "
                                      "as evaluation computes the prior)", choices=FLOW_REGIONS)
    future_frames: int = option(1, "targets per sample; training uses the first (t+1), evaluation tools the rest")
    frame_stride: int | None = option(None, "frames between consecutive frames of a sample (none: the dataset's default)")
    motion_strides: int = option(1, "frames training windows at frame strides 1..N x frame_stride: N times the footage's motion")
    rollout_steps: int = option(1, "extrapolation: unroll N recursive steps with gradients (each prediction becomes "
                                   "the newest context frame of the next step, scored against the next true frame; the "
                                   "loss is their mean); 1: one-step training, as published")
    crop_size: int | None = option(
        None, "square random training crop in pixels; auto: IFRNet's 224 for data on disk, and for the generated "
              "synthetic set its frame height (128), so the default always fits; one frame of every training clip is checked "
              "before any work", parse=parse_crop_size, metavar="N|auto")
    augment: bool = option(True, "the published IFRNet augmentations (crop, flips, channel and time reversal)")
    num_workers: int = option(2, "DataLoader worker processes per training process")
    seed: int = option(0, "seed of the weights, the sample order and the augmentations")
    amp: str = option("none", "mixed precision on a GPU (on a CPU it trains in float32 and says so)", choices=AMP_MODES)
    grad_clip: float = option(0.0, "clip the gradient norm to this (0: no clipping)")
    eval_interval: int = option(1, "validate every N epochs (and at the end)")
    max_steps: int = option(0, "stop after this many steps (0: epochs x steps per epoch)")
    val_samples: int = option(64, "validation samples (0: no validation)")
    val_batch_size: int = option(4, "validation batch size")
    run_name: str | None = option(None, "run folder name under --log_path (none: <model_name>_<dataset>_<task>)")
    save_interval_steps: int = option(0, "also save latest.pt every N steps (0: at each epoch end only)")
    log_interval: int = option(10, "write a train record every N steps")
    dist_timeout_min: float = option(30.0, "minutes a collective may wait for the other ranks (torchrun)")
    loss_charbonnier: float | None = option(None, "weight of the Charbonnier reconstruction loss (a smooth L1: minimised "
                                                  "by the median of the possible targets); auto: see --loss_rmse",
                                            metavar="W|auto", parse=parse_weight)
    loss_census: float = option(1.0, "weight of the census loss")
    loss_geometry: float = option(0.01, "weight of IFRNet's feature geometry loss")
    loss_distillation: float = option(0.01, "weight of the flow distillation loss (needs a teacher flow)")
    loss_distillation_beta: float = option(0.3, "IFRNet's robust weighting of the distillation; 0: plain Charbonnier "
                                                "(06_ablations: a tie)")
    loss_laplacian: float = option(0.0, "weight of the Laplacian pyramid loss")
    loss_perceptual: float = option(0.0, "weight of the VGG perceptual loss (needs --perceptual_weights)")
    loss_frequency: float = option(0.0, "weight of the frequency (FFT) loss")
    loss_boundary: float = option(0.0, "weight of a Charbonnier loss at motion boundaries, where the motion prior is "
                                       "sampled off (weight min(|prior shift| / 1 px, 1) per pixel); needs a motion prior")
    loss_rmse: float | None = option(None, "weight of a per-sample RMSE reconstruction loss (minimised by the mean of "
                                           "the possible targets, as PSNR is). auto: one reconstruction term, RMSE with "
                                           "a motion prior (docs/learning.md), IFRNet's Charbonnier without; where only "
                                           "one of --loss_charbonnier / --loss_rmse is given, the other is 1 if that one "
                                           "is 0, else 0", metavar="W|auto", parse=parse_weight)
    perceptual_weights: str | None = option(None, "VGG weights file for the perceptual loss")
    # robustness for long runs
    on_bad_sample: str = option("skip", "an unreadable training sample: skip (replace it; logged, counted) or fail "
                                        "(stop at once)", choices=BAD_SAMPLE_CHOICES)
    max_bad_samples: int = option(100, "distinct bad files tolerated; one more stops the run with the list")
    max_bad_steps: int = option(20, "consecutive non-finite steps (loss or gradient norm) that stop the run")

    def __post_init__(self):
        for key in AUTO_FIELDS:  # a config file's `crop_size: auto` (and so on) is the default
            if getattr(self, key) == "auto":
                setattr(self, key, None)

    @property
    def run_dir(self) -> Path:
        """`<log_path>/<run_name>`; without a run name, `<model_name>_<dataset>_<task>`."""
        return Path(self.log_path) / (self.run_name or f"{self.model_name}_{self.dataset}_{self.task}")

    def check(self, labels: dict | None = None) -> None:
        """Refuse values the trainer cannot run with, before anything is built.

        Args:
            labels: how to name each field in a message (`from_args` passes "--amp" for a flag and
                "'amp' in FILE" for a config file's key); a field not in it is named as itself.
        Raises:
            ConfigError (a ValueError): naming the field, the bad value and the valid values (an
                unknown `protocol` too, so it fails here, not after training).
        """
        labels = labels or {}
        name = lambda key: labels.get(key, key)  # noqa: E731 - a one-line lookup
        for item in dataclasses.fields(self):
            choices = item.metadata.get("choices")
            value = getattr(self, item.name)
            if choices is None or value is None:
                continue
            fold = item.name in ("model_name", "dataset")  # looked up case-insensitively by build_model / build_dataset
            known = [str(c).lower() for c in choices] if fold else list(choices)
            if (str(value).lower() if fold else value) not in known:
                raise ConfigError(choice_error(name(item.name), value, choices))
        if self.resume is not None and self.resume != "auto" and not Path(self.resume).is_file():
            close = difflib.get_close_matches(self.resume, ["auto"], n=1, cutoff=0.6)
            hint = " (did you mean 'auto'?)" if close else ""
            raise ConfigError(f"{name('resume')} must be 'auto' or an existing checkpoint file; got {self.resume!r}{hint}")
        if self.resume_path is not None and not Path(self.resume_path).is_file():
            raise ConfigError(f"{name('resume_path')}: checkpoint not found: {self.resume_path}")
        if self.init_from is not None and not Path(self.init_from).is_file():
            from ifrvp_core.checkpoint import packaged_models  # heavy (torch): only when --init_from is given

            installed = packaged_models()
            if self.init_from not in installed:
                raise ConfigError(f"{name('init_from')}: no such file, and no packaged model of that name "
                                  f"(installed: {', '.join(installed) or 'none'}): {self.init_from}")
        if self.init_from is not None and self.resume_path is not None:
            raise ConfigError(f"{name('init_from')} and {name('resume_path')} both give the starting weights; pass one")
        if self.overwrite and (self.resume is not None or self.resume_path is not None):
            which = name("resume") if self.resume is not None else name("resume_path")
            raise ConfigError(f"{name('overwrite')} (start afresh) and {which} (continue) contradict each other; pass one")
        if self.crop_size is not None and (not isinstance(self.crop_size, int) or self.crop_size < 1):
            raise ConfigError(f"{name('crop_size')} must be a positive integer or 'auto'; got {self.crop_size!r}")
        for key in ("lr_start", "lr_end"):
            value = getattr(self, key)
            if value is not None and not (is_real_number(value) and value > 0):
                raise ConfigError(f"{name(key)} must be a positive number{' or auto' if key == 'lr_start' else ''}; got {value!r}")
        if self.rollout_steps < 1 or (self.rollout_steps > 1 and self.task != "extrapolate"):
            raise ConfigError(f"{name('rollout_steps')} must be >= 1, and 1 unless --task is extrapolate; "
                              f"got {self.rollout_steps} with --task {self.task}")
        for key in (f"loss_{term}" for term in LOSS_FIELDS):
            value = getattr(self, key)
            if value is None and key in AUTO_FIELDS:
                continue
            if not (is_real_number(value) and 0 <= value < math.inf):
                auto = " or auto" if key in AUTO_FIELDS else ""
                raise ConfigError(f"{name(key)} must be a finite weight >= 0 (0 switches the term off){auto}; got {value!r}")
        if not any(self.loss_weights().values()):
            raise ConfigError(f"every loss weight is 0 (loss_{', loss_'.join(LOSS_FIELDS)}): nothing to train; "
                              "give one a positive weight")
        if self.loss_boundary and self.resolved_motion_prior() == "none":
            raise ConfigError(f"{name('loss_boundary')} {self.loss_boundary:g} needs a motion prior (the boundaries are where "
                              f"the prior is sampled off), but --motion_prior resolves to none; use --motion_prior dis or "
                              f"{name('loss_boundary')} 0")
        if self.max_bad_samples < 0 or self.max_bad_steps < 1:
            raise ConfigError(f"{name('max_bad_samples')} must be >= 0 and {name('max_bad_steps')} >= 1, "
                              f"got {self.max_bad_samples} and {self.max_bad_steps}")
        if self.protocol is not None:
            from ifrvp_core.protocols import PROTOCOLS, get_protocol  # heavy (torch): only when a protocol is named

            try:
                get_protocol(self.protocol)
            except ValueError:
                raise ConfigError(choice_error(name("protocol"), self.protocol, list(PROTOCOLS))) from None

    # ------------------------------------------------------------------ the slices other parts take
    def resolved_motion_prior(self) -> str:
        if self.motion_prior == "auto":
            return "dis" if self.task == "extrapolate" else "none"
        return self.motion_prior

    def resolved_lr_start(self) -> float:
        """The learning rate at step 0: `lr_start`, or by default 5e-4 with a motion prior (extrapolation), where the
        prior's corrections learn (docs/learning.md), and IFRNet's published 1e-4 otherwise (interpolation)."""
        if self.lr_start is not None:
            return float(self.lr_start)
        return PRIOR_LR_START if self.resolved_motion_prior() != "none" else IFRNET_LR_START

    def loss_weights(self) -> dict:
        """Each loss term's weight (`LOSS_FIELDS`), the reconstruction term's auto resolved.

        There is one reconstruction term unless both weights are given: by default RMSE with a motion
        prior (it seeks the mean of what a pixel may become, as PSNR rewards; docs/learning.md) and
        IFRNet's Charbonnier without one (interpolation, `--motion_prior none`, the published recipes,
        which name `loss_charbonnier`). Where only one of the two is given, the other is 1 when that one is
        0 (so `--loss_rmse 0` brings Charbonnier back) and 0 otherwise.
        """
        weights = {term: getattr(self, f"loss_{term}") for term in LOSS_FIELDS}
        charbonnier, rmse = weights["charbonnier"], weights["rmse"]
        if charbonnier is None and rmse is None:
            charbonnier, rmse = (0.0, 1.0) if self.resolved_motion_prior() != "none" else (1.0, 0.0)
        elif charbonnier is None:
            charbonnier = 0.0 if rmse else 1.0
        elif rmse is None:
            rmse = 0.0 if charbonnier else 1.0
        return {**weights, "charbonnier": float(charbonnier), "rmse": float(rmse)}

    def resolved_crop_size(self) -> int:
        """The training crop: `crop_size`, or by default IFRNet's 224, capped to the generated synthetic set's frames."""
        if self.crop_size is not None:
            return int(self.crop_size)
        if self.dataset.lower() == "synthetic" and self.data_root is None:
            from ifrvp_core.data.build import SYNTHETIC_DEFAULTS  # heavy (torch): see the module docstring

            return min(IFRNET_CROP, SYNTHETIC_DEFAULTS["height"], SYNTHETIC_DEFAULTS["width"])
        return IFRNET_CROP

    def continues_run(self) -> bool:
        """Whether this run continues one in its run folder (`--resume`, or the seed project's `--resume_path`)."""
        return self.resume is not None or self.resume_path is not None

    def run_folder_refusal(self, present: list[str]) -> str | None:
        """Why this run may not start in its run folder, which holds `present` (names of `RUN_FILES`); None when it may."""
        if not present or self.continues_run() or self.overwrite:
            return None
        return (f"run folder {self.run_dir} already holds a run (it has {', '.join(present)}); continue it with --resume auto, "
                "start afresh with --overwrite (deletes that run's logs and checkpoints), or pick another --run_name or --log_path")

    def model_options(self) -> dict:
        """`build_model(model_name, **options)` keywords: context frames and, when one is used, the motion prior."""
        prior = self.resolved_motion_prior()
        options = {"context_frames": self.context_frames, **({} if prior == "none" else {"motion_prior": prior})}
        if self.prior_shift_input and prior != "none":  # the shift of no prior: nothing to add (e.g. a published-recipe variant)
            options["prior_shift_input"] = True
        if self.prior_shift_gate and prior != "none":
            options["prior_shift_gate"] = True
        return options

    def data_options(self) -> dict:
        """`build_dataset` keywords both splits share: the window layout, the task and the seed."""
        return dict(context_frames=self.context_frames, future_frames=self.future_frames, task=self.task,
                    frame_stride=self.frame_stride, seed=self.seed)

    def train_data_options(self) -> dict:
        """`build_dataset(dataset, data_root, "train", **options)` keywords: augmentation, teacher flow, bad samples."""
        return dict(augment=self.augment, crop_size=self.resolved_crop_size(), teacher_flow=TEACHER_FLOW_MODES[self.teacher_flow],
                    on_bad_sample=self.on_bad_sample, motion_strides=self.motion_strides, flow_region=self.flow_region,
                    prior_flow=self.resolved_motion_prior() == "dis",  # lucas_kanade: the model computes it on the device
                    **{**self.data_options(), "future_frames": max(self.future_frames, self.rollout_steps)})

    @property
    def val_split(self) -> str:
        return VAL_SPLITS.get(self.dataset, "test")

    def val_data_options(self) -> dict:
        """`build_dataset(dataset, root, val_split, **options)` keywords: full frames, no teacher flow."""
        return dict(teacher_flow=False, **self.data_options())

    def loss_config(self):
        """The `LossConfig` of the loss weights."""
        from ifrvp_core.losses import LossConfig  # heavy (torch, torchvision): see the module docstring

        return LossConfig(**self.loss_weights(),
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
        """Defaults < `--config` file (JSON or YAML) < command-line flags, checked (`check`).

        Raises:
            SystemExit: `--help`, an unparsable flag, a missing config file or unknown keys in it.
            ConfigError: a bad value, naming the flag as typed (`--amp`) or the file's key and the file.
        """
        args = argument_parser(cls).parse_args(argv)
        values, labels = {}, {}
        if args.config:
            from_file = read_config_file(args.config)
            values.update(from_file)
            labels.update({key: f"{key!r} in {args.config}" for key in from_file})
        flags = {k: v for k, v in vars(args).items() if k != "config" and v is not None}
        values.update(flags)
        labels.update({key: f"--{key}" for key in flags})
        unknown = cls.unknown_keys(values)
        if unknown:
            raise SystemExit(f"unknown config keys in {args.config}: {unknown}")
        config = cls(**values)
        config.check(labels)
        return config

    @classmethod
    def unknown_keys(cls, values) -> list[str]:
        """The keys of `values` that are no field of this config, sorted."""
        known = {f.name for f in dataclasses.fields(cls)}
        return sorted(set(values) - known)


def field_help(item: dataclasses.Field) -> str:
    """A field's `--help` text: its meaning, its valid values and its default (escaped for argparse's % formatting)."""
    text = item.metadata.get("help", "")
    choices = item.metadata.get("choices")
    if choices is not None:
        text += f"; one of {', '.join(str(c) for c in choices)}"
    default = item.default
    shown = "auto" if item.name in AUTO_FIELDS and default is None else ("none" if default is None else default)
    text += f" (default: {str(shown).lower() if isinstance(shown, bool) else shown})"
    return text.replace("%", "%%")


class OneMetavarFormatter(argparse.HelpFormatter):
    """Help lines such as `--data_root, --data-root DATA_ROOT` (argparse repeats the metavar after each spelling)."""

    def _format_action_invocation(self, action):  # argparse's documented extension point for this line
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        return ", ".join(action.option_strings) + " " + self._format_args(action, self._get_default_metavar_for_optional(action))


def existing_run_files(run_dir) -> list[str]:
    """The names of `RUN_FILES` present in `run_dir`: what makes it a folder that already holds a run."""
    run_dir = Path(run_dir)
    return [name for name in RUN_FILES if (run_dir / name).exists()]


def argument_parser(config_class=TrainConfig) -> argparse.ArgumentParser:
    """`--config FILE` and one flag per field of `config_class`, typed by the field (every default None: unset).

    Each flag takes both spellings, `--data_root` (canonical, the config key) and `--data-root`;
    its help text comes from the field's metadata. A bool flag alone means true (`--overwrite`).
    """
    parser = argparse.ArgumentParser(
        prog="ifrvp train", formatter_class=OneMetavarFormatter, usage="ifrvp train [--config FILE] [--FLAG VALUE ...]",
        description="Train an IFRNet-family model. Every flag is also a key of the --config file "
                    "(flags win over the file); --flag_name and --flag-name are the same flag.",
    )
    parser.add_argument("--config", metavar="FILE", help="JSON or YAML file with any of the keys below (default: none)")
    for item in dataclasses.fields(config_class):
        kind = item.type if isinstance(item.type, type) else str(item.type)
        names = [f"--{item.name}"] + ([f"--{item.name.replace('_', '-')}"] if "_" in item.name else [])
        common = dict(dest=item.name, default=None, help=field_help(item))
        if "metavar" in item.metadata:
            common["metavar"] = item.metadata["metavar"]
        elif "choices" in item.metadata:
            common["metavar"] = "{" + ",".join(str(c) for c in item.metadata["choices"]) + "}"
        if "parse" in item.metadata:
            parser.add_argument(*names, type=item.metadata["parse"], **common)
        elif kind in (bool, "bool"):
            parser.add_argument(*names, type=_parse_bool, nargs="?", const=True, **{"metavar": "BOOL", **common})
        elif kind in (int, "int"):
            parser.add_argument(*names, type=int, **common)
        elif kind in (float, "float"):
            parser.add_argument(*names, type=float, **common)
        elif "int" in kind:
            parser.add_argument(*names, type=_optional(int), **common)
        elif "float" in kind:
            parser.add_argument(*names, type=_optional(float), **common)
        elif kind in (str, "str"):  # a plain string: "none" is a value here (e.g. --motion_prior none)
            parser.add_argument(*names, type=str, **common)
        else:
            parser.add_argument(*names, type=_optional(str), **common)
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
