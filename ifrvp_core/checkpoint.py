"""Checkpoint files: atomic writes, safe loads, official IFRNet weights, this project's format.

Everything is loaded with ``torch.load(weights_only=True)``: no pickled code runs, so a checkpoint
from anywhere is safe to open. Writes go through `ifrvp_core.atomic`: a temporary file in the same
folder that is fsynced and renamed over the destination, so a crash or a full disk never leaves a
half-written file where a good one was.

This project's checkpoints are dicts with ``format == "ifrvp-checkpoint"`` (see
docs/architecture.md); official IFRNet files are bare state_dicts with the published key names,
which this package's modules share, so they load as they are.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

# The atomic writer lives in ifrvp_core.atomic; its names stay importable from here, as before.
from ifrvp_core.atomic import current_umask, ordinary_dir_mode, ordinary_file_mode, write_atomic, write_text_atomic  # noqa: F401
from ifrvp_core.models import VARIANTS, build_model

CHECKPOINT_FORMAT = "ifrvp-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


def save_atomic(obj, path) -> Path:
    """`torch.save(obj)` to `path` through a temporary file + fsync + rename (`ifrvp_core.atomic`)."""
    return write_atomic(path, lambda handle: torch.save(obj, handle))


def load_file(path, map_location="cpu"):
    """`torch.load(path, weights_only=True)` with errors that name the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"checkpoint path is a directory, not a file: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated zip, garbage bytes, pickled code, ...
        size = path.stat().st_size
        raise CheckpointError(
            f"cannot read checkpoint {path} ({size} bytes): {type(error).__name__}: {str(error).splitlines()[0]}. "
            "The file is truncated, corrupt, or holds objects that weights_only loading refuses."
        ) from error


def is_project_checkpoint(obj) -> bool:
    return isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT


def extract_state_dict(obj, source="checkpoint") -> dict:
    """The model state_dict inside a project checkpoint or an official/bare state_dict."""
    if is_project_checkpoint(obj):
        state = obj.get("model")
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        state = obj["state_dict"]
    else:
        state = obj
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source} holds no model state_dict (a dict of tensors)")
    # Checkpoints saved from a DistributedDataParallel wrapper carry a `module.` prefix.
    if all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state


def _summarise(keys, limit=8) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def saved_motion_prior(obj) -> str:
    """The motion prior a loaded checkpoint object was trained with ("none" for official/bare state_dicts)."""
    return (obj.get("model_options") or {}).get("motion_prior", "none") if is_project_checkpoint(obj) else "none"


def fit_problems(missing: set, unexpected: set, mismatched: list[str]) -> list[str]:
    """The lines of a "does not fit" message: missing and unexpected keys, then the first shape mismatches."""
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_summarise(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_summarise(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {'; '.join(mismatched[:8])}")
    return problems


def model_label(model: nn.Module) -> str:
    """"IFRNet_S (K=2)": how a message names the model weights do not fit."""
    return f"{getattr(model, 'model_name', type(model).__name__)} (K={getattr(model, 'context_frames', '?')})"


def resolve_checkpoint_path(path):
    """`path`, or the packaged checkpoint when `path` is a packaged model's name (`is_packaged_name`)."""
    return packaged_checkpoint_path(str(path)) if is_packaged_name(path) else path


def load_checkpoint(model: nn.Module, path_or_state, strict: bool = True, source: str | None = None) -> nn.Module:
    """Load weights into `model` from a file path or an already loaded object.

    Accepts an official IFRNet state_dict (published key names, optionally `module.`-prefixed)
    or this project's checkpoint dict. Missing, unexpected or mis-shaped keys raise
    `CheckpointError` naming them.
    """
    if isinstance(path_or_state, (str, os.PathLike)):
        source = str(path_or_state)
        obj = load_file(path_or_state)
    else:
        source, obj = source or "checkpoint object", path_or_state
    state = extract_state_dict(obj, source)
    # Same shapes, different meaning: a prior model's decoders read aligned features and flow corrections.
    saved_prior = saved_motion_prior(obj)
    model_prior = getattr(model, "motion_prior", "none")
    if saved_prior != model_prior:
        raise CheckpointError(
            f"{source} was trained with motion_prior={saved_prior!r} but the model has motion_prior={model_prior!r}; "
            "build the model to match (load_model does), e.g. published IFRNet weights with build_model(name) "
            "or `ifrvp train --motion_prior none`; to start a motion-prior model from them, `ifrvp train --init_from` "
            "(checkpoint.init_from_weights)"
        )
    own = model.state_dict()
    missing = set(own) - set(state)
    unexpected = set(state) - set(own)
    mismatched = [
        f"{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(own[key].shape)}"
        for key in own  # model order: the first mismatch shown is the first layer that differs
        if key in state and state[key].shape != own[key].shape
    ]
    problems = fit_problems(missing if strict else set(), unexpected if strict else set(), mismatched)
    if problems:
        raise CheckpointError(f"{source} does not fit {model_label(model)}: " + " | ".join(problems))
    model.load_state_dict(state, strict=strict)
    return model


def init_from_weights(model: nn.Module, path) -> dict:
    """Start `model` from another network's weights (`ifrvp train --init_from PATH`), before training.

    `path` is an official IFRNet file, any IFRVP checkpoint or a packaged model's name, of the
    same variant and context frames. Unlike `load_checkpoint` it may cross motion priors:

    - every tensor of the same shape is copied;
    - a decoder's first conv that has the 2K `prior_shift_input` channels in `model` but not in
      the file gets the file's weights on its other inputs and zeros on the shift (the shift is
      the last input, so the loaded network's function is unchanged);
    - decoder1's output layer, when `model` has the `prior_shift_gate` channel and the file has
      not, gets the file's weights on its other outputs and zeros on the gate (g = 0: again the
      loaded network's function, unchanged);
    - when `model` has a motion prior and the file has none (official IFRNet weights), the
      output layers are zeroed again (`start_at_prior`): the encoder and decoder bodies are the
      file's, and the prediction still starts exactly at the motion prior (`prior_only`).

    From a checkpoint that has the model's prior, nothing is reset (fine-tuning a trained model).

    Returns:
        dict with `source`, `copied` (tensors copied whole), `widened` (first-conv keys given zero
        shift channels), `gate_added` (bool: decoder1's output layer given a zero gate channel) and
        `restarted_at_prior` (bool).
    Raises:
        CheckpointError: naming the file and every key that is missing, unexpected or of another
            shape (another variant or context-frame count).
    """
    path = resolve_checkpoint_path(path)
    source = str(path)
    obj = load_file(path)
    state = extract_state_dict(obj, source)
    saved_prior = saved_motion_prior(obj)
    model_prior = getattr(model, "motion_prior", "none")
    own = model.state_dict()
    shift = 2 * int(getattr(model, "context_frames", 2)) if getattr(model, "prior_shift_input", False) else 0
    gate_keys = ()
    if getattr(model, "prior_shift_gate", False):  # decoder1's output layer (its last module) carries the gate
        gate_layer = f"decoder1.convblock.{len(model.decoder1.convblock) - 1}"
        gate_keys = (gate_layer + ".weight", gate_layer + ".bias")
    missing = set(own) - set(state)
    unexpected = set(state) - set(own)
    merged, widened, gated, mismatched = {}, [], [], []
    for key, target in own.items():
        if key not in state:
            continue
        value = state[key].to(target.dtype)
        if value.shape == target.shape:
            merged[key] = value
        elif shift and key.startswith("decoder") and key.endswith("convblock.0.0.weight") and (
                wide := zero_padded(value, target, axis=1, extra=shift)) is not None:
            merged[key] = wide
            widened.append(key)
        elif key in gate_keys and (wide := zero_padded(value, target, axis=0 if key.endswith(".bias") else 1, extra=1)) is not None:
            merged[key] = wide
            gated.append(key)
        else:
            mismatched.append(f"{key}: file {tuple(value.shape)} vs model {tuple(target.shape)}")
    problems = fit_problems(missing, unexpected, mismatched)
    if problems:
        raise CheckpointError(f"--init_from {source} does not fit {model_label(model)} (build the same variant and context "
                              "frames as the file): " + " | ".join(problems))
    model.load_state_dict(merged)
    restart = model_prior != "none" and saved_prior == "none"
    if restart:
        model.start_at_prior()
    return dict(source=source, copied=len(merged) - len(widened) - len(gated), widened=widened, gate_added=bool(gated),
                restarted_at_prior=restart)


def zero_padded(value: torch.Tensor, target: torch.Tensor, axis: int, extra: int) -> torch.Tensor | None:
    """`value` with `extra` zero entries appended along `axis`, when that gives `target`'s shape; else None.

    Loads a smaller layer into one with more inputs (a first conv's shift channels, axis 1) or more
    outputs (a ConvTranspose2d's gate: weight axis 1, bias axis 0); the new entries are zeros, so the
    loaded network's function is unchanged.
    """
    expected = list(value.shape)
    if axis >= len(expected):
        return None
    expected[axis] += extra
    if tuple(expected) != tuple(target.shape):
        return None
    wide = torch.zeros_like(target)
    wide.narrow(axis, 0, value.shape[axis]).copy_(value)
    return wide


def infer_model_config(state: dict) -> tuple[str, int]:
    """Guess (variant name, context_frames) from an official or bare state_dict's shapes."""
    try:
        first = state["encoder.pyramid1.0.0.weight"]
        widths = tuple(state[f"encoder.pyramid{i}.0.0.weight"].shape[0] for i in range(1, 5))
        decoder4_in = state["decoder4.convblock.0.0.weight"].shape[1]
    except KeyError as error:
        raise CheckpointError(f"not an IFRNet-family state_dict: key {error.args[0]!r} is missing") from error
    block = "elan" if any(".attention." in key for key in state) else "resblock"
    context_frames, remainder = divmod(decoder4_in - 1, widths[3])
    if remainder:
        raise CheckpointError(f"cannot infer context frames from decoder4 input width {decoder4_in}")
    for name, config in VARIANTS.items():
        if tuple(config["widths"]) == widths and config["first_kernel"] == first.shape[-1] and config["block"] == block:
            return name, context_frames
    raise CheckpointError(f"no registered variant has widths {widths}, first kernel {first.shape[-1]}, block {block}")


def load_model(path, model_name: str | None = None, device="cpu", eval_mode: bool = True) -> nn.Module:
    """Build the right variant for a checkpoint file and load its weights.

    Project checkpoints carry their model name, context frames and options; for an official
    state_dict the variant is inferred from its shapes unless `model_name` is given. `path` may
    also name a packaged model (`packaged_models()`, e.g. "ifrvp-s-real").
    """
    path = resolve_checkpoint_path(path)
    obj = load_file(path)
    if is_project_checkpoint(obj):
        name = model_name or obj["model_name"]
        options = dict(obj.get("model_options") or {})
        if "widths" in options:
            options["widths"] = tuple(options["widths"])
        model = build_model(name, context_frames=int(obj.get("context_frames", 2)), **options)
    else:
        inferred, context_frames = infer_model_config(extract_state_dict(obj, str(path)))
        model = build_model(model_name or inferred, context_frames=context_frames)
    load_checkpoint(model, obj, source=str(path))
    model.to(device)
    if eval_mode:
        model.eval()
    return model


def model_checkpoint(model: nn.Module, **extra) -> dict:
    """A minimal project checkpoint dict for `model` (training adds optimizer, RNG, ...)."""
    options = dict(getattr(model, "model_options", {}))
    if "widths" in options:
        options["widths"] = list(options["widths"])
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_name": getattr(model, "model_name", type(model).__name__),
        "context_frames": int(getattr(model, "context_frames", 2)),
        "model_options": options,
        "model": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        **extra,
    }


# --------------------------------------------------------------------------------------------
# packaged weights: `ifrvp predict` without --checkpoint

PACKAGED_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_PACKAGED_MODEL = "ifrvp-s-real"


def packaged_models() -> list[str]:
    """Names of the packaged models installed (`ifrvp_core/weights/<name>.pt`), sorted."""
    return sorted(path.stem for path in PACKAGED_WEIGHTS_DIR.glob("*.pt")) if PACKAGED_WEIGHTS_DIR.is_dir() else []


def is_packaged_name(path) -> bool:
    """True when `path` is no existing file but a plain name without a suffix: a packaged model's name."""
    text = str(path)
    return not Path(text).exists() and Path(text).name == text and not Path(text).suffix


def packaged_checkpoint_path(name: str = DEFAULT_PACKAGED_MODEL) -> Path:
    """The packaged checkpoint `name`: `ifrvp_core/weights/<name>.pt` inside the installed package.

    Raises CheckpointError saying which models are installed, and to pass a checkpoint file
    instead, when that file is not there.
    """
    if not name or Path(name).name != name:
        raise CheckpointError(f"a packaged model name is a plain name like {DEFAULT_PACKAGED_MODEL!r}, got {name!r}")
    path = PACKAGED_WEIGHTS_DIR / f"{name}.pt"
    if not path.is_file():
        installed = ", ".join(packaged_models()) or "none"
        raise CheckpointError(
            f"no packaged model {name!r} is installed (looked for {path}; installed: {installed}); "
            "pass a checkpoint file with --checkpoint"
        )
    return path


def load_packaged_model(name: str = DEFAULT_PACKAGED_MODEL, device="cpu") -> nn.Module:
    """`load_model` on the packaged checkpoint `name` (`packaged_checkpoint_path`)."""
    return load_model(packaged_checkpoint_path(name), device=device)
