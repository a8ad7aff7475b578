"""Model registry for the IFRNet family (timm-style: `build_model(name)`, `list_models()`).

Construction is separate from weights: `build_model` gives randomly initialised weights;
`ifrvp_core.checkpoint.load_checkpoint` / `load_model` load them.
"""
from __future__ import annotations

from typing import Callable

import torch

from ifrvp_core.models.ifrnet import IFRNetModel

_REGISTRY: dict[str, Callable[..., IFRNetModel]] = {}

# Widths (c1..c4), ResBlock side channels and first kernel of each variant (docs/model.md).
VARIANTS = {
    "IFRNet": dict(widths=(32, 48, 72, 96), side_channels=32, first_kernel=3, block="resblock"),
    "IFRNet_L": dict(widths=(64, 96, 144, 192), side_channels=64, first_kernel=7, block="resblock"),
    "IFRNet_S": dict(widths=(24, 36, 54, 72), side_channels=24, first_kernel=3, block="resblock"),
    "IFRNet_T": dict(widths=(16, 24, 36, 48), side_channels=16, first_kernel=3, block="resblock"),
    "IFRNet_ELAN": dict(widths=(32, 48, 72, 96), side_channels=32, first_kernel=3, block="elan"),
}


def register_model(name: str):
    """Decorator adding a builder `fn(context_frames=2, **options) -> nn.Module` to the registry."""

    def decorator(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return decorator


def _make_builder(name: str, defaults: dict):
    def builder(context_frames: int = 2, **options) -> IFRNetModel:
        config = {**defaults, **options}
        model = IFRNetModel(context_frames=context_frames, **config)
        model.model_name = name
        return model

    builder.__name__ = name.lower()
    builder.__doc__ = f"{name}: widths {defaults['widths']}, side {defaults['side_channels']}, block {defaults['block']}."
    return builder


for _name, _defaults in VARIANTS.items():
    register_model(_name)(_make_builder(_name, _defaults))


def list_models() -> list[str]:
    """Names accepted by `build_model`."""
    return list(_REGISTRY)


def build_model(name: str, context_frames: int = 2, **options) -> IFRNetModel:
    """Build a model of the family with random weights.

    Args:
        name: one of `list_models()` (case-insensitive).
        context_frames: K >= 2 input frames (K = 2 is the published layout).
        **options: overrides of the variant's constructor arguments (e.g. `block="elan"`).
    """
    lookup = {key.lower(): key for key in _REGISTRY}
    key = lookup.get(str(name).lower())
    if key is None:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[key](context_frames=context_frames, **options)


__all__ = ["IFRNetModel", "VARIANTS", "build_model", "list_models", "prepare_for_inference", "register_model"]


def prepare_for_inference(model, channels_last: bool = False, compile: bool = False, device=None):
    """Eval mode, optional channels_last memory format and optional `torch.compile`.

    Results are unchanged up to float rounding (tests check 1e-5). channels_last helps
    convolutions on recent CPUs with oneDNN and on GPUs; measure with benchmarks/model_speed.py.
    """
    model = model.eval()
    if device is not None:
        model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        model.forward = torch.compile(model.forward, dynamic=False)
    return model

