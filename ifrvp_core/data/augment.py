"""Paired augmentations: every frame of a sample, its flows and masks change together.

Keys: images `context` (K,3,H,W) and `target` (n,3,H,W); flows `teacher_flow` / `gt_flow` /
`prior_flow` (2K,H,W) with x on even and y on odd channels (`prior_flow` is here only when it was
computed on the full frame, `flow_region="frame"`); masks `gt_valid` (K,H,W). Flow signs and axes
follow each transform. Time reversal is not here: it changes which frames are context and
target, so the dataset applies it to the frame window before loading (flows are then read for
the actual pairs).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_KEYS = ("context", "target")
FLOW_KEYS = ("teacher_flow", "gt_flow", "prior_flow")
MASK_KEYS = ("gt_valid",)


@dataclass
class AugmentConfig:
    """Probabilities of the published IFRNet augmentations (crop size None: no crop)."""

    crop_size: tuple[int, int] | None = (224, 224)
    channel_reverse: float = 0.5
    vertical_flip: float = 0.5
    horizontal_flip: float = 0.5
    transpose: float = 0.5
    time_reverse: float = 0.5
    resize_2x: float = 0.1


def _spatial(sample: dict, fn) -> dict:
    return {key: fn(value) if key in IMAGE_KEYS + FLOW_KEYS + MASK_KEYS else value for key, value in sample.items()}


def _flow_channels(sample: dict, fn) -> dict:
    out = dict(sample)
    for key in FLOW_KEYS:
        if key in out:
            out[key] = fn(out[key])
    return out


def resize_2x(sample: dict) -> dict:
    """Upsample everything x2 (bilinear; masks nearest); flows double."""

    def up(value: torch.Tensor, mode: str) -> torch.Tensor:
        extra = {} if mode == "nearest" else {"align_corners": False}
        return F.interpolate(value.unsqueeze(0).float(), scale_factor=2.0, mode=mode, **extra)[0]

    out = dict(sample)
    for key in IMAGE_KEYS:
        out[key] = F.interpolate(out[key], scale_factor=2.0, mode="bilinear", align_corners=False).clamp(0, 1)
    for key in FLOW_KEYS:
        if key in out:
            out[key] = 2.0 * up(out[key], "bilinear")
    for key in MASK_KEYS:
        if key in out:
            out[key] = up(out[key], "nearest").to(sample[key].dtype)
    return out


def crop(sample: dict, top: int, left: int, height: int, width: int) -> dict:
    return _spatial(sample, lambda v: v[..., top : top + height, left : left + width])


def horizontal_flip(sample: dict) -> dict:
    out = _spatial(sample, lambda v: v.flip(-1))
    return _flow_channels(out, lambda f: f * _sign(f, x=-1.0, y=1.0))


def vertical_flip(sample: dict) -> dict:
    out = _spatial(sample, lambda v: v.flip(-2))
    return _flow_channels(out, lambda f: f * _sign(f, x=1.0, y=-1.0))


def transpose(sample: dict) -> dict:
    """Swap the image axes (a 90 degree rotation plus a flip); flow x and y swap too."""
    out = _spatial(sample, lambda v: v.transpose(-1, -2))

    def swap(flow):
        k = flow.shape[0] // 2
        return flow.view(k, 2, *flow.shape[1:]).flip(1).reshape(flow.shape)

    return _flow_channels(out, swap)


def channel_reverse(sample: dict) -> dict:
    out = dict(sample)
    for key in IMAGE_KEYS:
        out[key] = out[key].flip(-3)
    return out


def _sign(flow: torch.Tensor, x: float, y: float) -> torch.Tensor:
    k = flow.shape[0] // 2
    return flow.new_tensor([x, y] * k).view(2 * k, 1, 1)


def augment(sample: dict, config: AugmentConfig, rng: np.random.Generator) -> dict:
    """Apply the random augmentations (except time reversal) drawn from `rng`."""
    if rng.random() < config.resize_2x:
        sample = resize_2x(sample)
    if config.crop_size is not None:
        sample = random_crop(sample, config.crop_size, rng)
    if rng.random() < config.channel_reverse:
        sample = channel_reverse(sample)
    if rng.random() < config.vertical_flip:
        sample = vertical_flip(sample)
    if rng.random() < config.horizontal_flip:
        sample = horizontal_flip(sample)
    # transposing a non-square sample would change its shape and break batching
    if rng.random() < config.transpose and sample["context"].shape[-1] == sample["context"].shape[-2]:
        sample = transpose(sample)
    return sample


def random_crop(sample: dict, crop_size, rng: np.random.Generator) -> dict:
    height, width = sample["context"].shape[-2:]
    crop_h, crop_w = crop_size
    if crop_h > height or crop_w > width:
        raise ValueError(
            f"crop size {crop_h}x{crop_w} is larger than sample {sample.get('name', '?')} ({height}x{width})"
        )
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    return crop(sample, top, left, crop_h, crop_w)
