"""Inference precision: run a model's forward pass under autocast (bf16 / fp16) or in plain float32.

`--precision` of `ifrvp predict` and `ifrvp evaluate`, `IFRNetModel.predict(..., precision=)` and
`rollout.ModelStep(..., precision=)` all go through `autocast_for`. Autocast runs convolutions
(and the other ops on torch's lower-precision list) in the reduced type and keeps the rest in
float32; the weights stay float32. The DIS motion prior is computed from the float32 frames
(OpenCV, outside torch) and stays float32; callers cast the prediction back to float32 in [0, 1].

    >>> with autocast_for("bf16", frames.device):
    ...     prediction = model(frames, 2.0)["prediction"].float()

See docs/inference.md for the measured PSNR change and speed.
"""
from __future__ import annotations

import contextlib
import warnings

import torch

from ifrvp_core.flags import choice_error

__all__ = ["PRECISIONS", "autocast_for", "check_precision"]

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device=None, flag: str = "--precision") -> str:
    """`precision` if it is one of `PRECISIONS` and runs on `device`; ValueError naming `flag` otherwise.

    bf16 on CUDA needs a GPU with bf16 support; fp16 and bf16 on CPU need torch's CPU autocast
    for that type (torch >= 2.4 has both; without it autocast would silently do nothing).
    """
    if precision not in PRECISIONS:
        raise ValueError(choice_error(flag, precision, PRECISIONS))
    if precision == "fp32":
        return precision
    device_type = torch.device(device).type if device is not None else "cpu"
    if device_type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"{flag} bf16: this GPU has no bf16 support; use {flag} fp16 or fp32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            context = torch.autocast(device_type, dtype=_DTYPES[precision])
        except RuntimeError as error:  # device type without autocast
            raise ValueError(f"{flag} {precision} is not supported on {device_type}: {error}; use {flag} fp32") from None
    del context  # built only to see whether torch accepts it (it warns and disables itself if not)
    if any("not supported" in str(w.message) for w in caught):
        raise ValueError(f"{flag} {precision} is not supported by this torch on {device_type} "
                         f"(torch {torch.__version__}); use {flag} fp32")
    return precision


def autocast_for(precision: str, device) -> contextlib.AbstractContextManager:
    """The context to run a forward pass in: autocast to bf16/fp16 on `device`'s type, nothing for fp32.

    ValueError (via `check_precision`) for an unknown precision or one `device` cannot run.
    """
    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=_DTYPES[precision])
