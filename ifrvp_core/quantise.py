"""Float images to 8 bits: the one conversion behind DIS inputs, written predictions and pictures.

Frames in [0, 1] are clamped, scaled by 255 and rounded to the nearest level (ties to even,
`torch.round`), then moved to channels-last numpy, the layout of OpenCV, imageio and matplotlib.
The synthetic generator writes its PNGs with its own rounding (`synthetic_render`), kept so that
the generated data stays byte-identical to the sets already on disk.
"""
from __future__ import annotations

import numpy as np
import torch


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) float tensor in [0, 1] -> (..., H, W, 3) uint8 numpy array (on the CPU)."""
    levels = (images.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return levels.movedim(-3, -1).cpu().numpy()


__all__ = ["to_uint8"]
