"""Backward warping with a cached sampling grid.

`backward_warp(image, flow)` samples `image` at `p + flow(p)` for every target pixel `p`, the warp
IFRNet uses (bilinear, border padding, ``align_corners=True``). The normalised base grid depends
only on (H, W, device, dtype), so it is built once and reused: at 1024x2048 rebuilding it costs
as much as the sampling itself.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F

_GRID_CACHE: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
_GRID_CACHE_SIZE = 32


def base_grid(height: int, width: int, device, dtype) -> torch.Tensor:
    """Identity sampling grid in grid_sample's normalised coordinates.

    Returns:
        (1, H, W, 2) tensor; ``[..., 0]`` is x in [-1, 1], ``[..., 1]`` is y in [-1, 1].
    """
    # Inference tensors must not leak into autograd graphs, so the mode is part of the key.
    key = (height, width, str(device), dtype, torch.is_inference_mode_enabled())
    grid = _GRID_CACHE.get(key)
    if grid is None:
        # computed in float32 (float64 for float64) and rounded once to `dtype`: a bf16 linspace
        # accumulates its own rounding
        exact = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        ys = torch.linspace(-1.0, 1.0, height, device=device, dtype=exact)
        xs = torch.linspace(-1.0, 1.0, width, device=device, dtype=exact)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack([grid_x, grid_y], dim=-1).unsqueeze(0).to(dtype)
        _GRID_CACHE[key] = grid
        if len(_GRID_CACHE) > _GRID_CACHE_SIZE:
            _GRID_CACHE.popitem(last=False)
    else:
        _GRID_CACHE.move_to_end(key)
    return grid


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Warp `image` towards the target with the target->source flow.

    Args:
        image: (B, C, H, W) source image or feature map.
        flow: (B, 2, H, W) flow from each target pixel to the source, in pixels;
            channel 0 is x (right positive), channel 1 is y (down positive).

    Returns:
        (B, C, H, W): ``out[p] = image[p + flow[p]]``, bilinear, border-clamped.
    """
    if image.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(
            f"backward_warp expects image (B,C,H,W) and flow (B,2,H,W); got image {tuple(image.shape)} "
            f"and flow {tuple(flow.shape)}"
        )
    if image.shape[0] != flow.shape[0] or image.shape[-2:] != flow.shape[-2:]:
        raise ValueError(
            f"backward_warp: image {tuple(image.shape)} and flow {tuple(flow.shape)} differ in batch or size"
        )
    _, _, height, width = flow.shape
    # The grid in the wider of the two types (as the published warp): under bf16 autocast a bf16
    # flow warping a float32 image gets a float32 grid, because a bf16 grid near +-1 is quantised
    # to 2**-8, about a pixel at 448 wide. In float32 this is float32 throughout.
    dtype = torch.promote_types(image.dtype, flow.dtype)
    # align_corners=True maps -1..1 onto pixel centres 0..W-1, hence the (W-1)/2 normalisation.
    norm = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], device=flow.device, dtype=dtype).view(1, 1, 1, 2)
    grid = base_grid(height, width, flow.device, dtype) + flow.permute(0, 2, 3, 1).to(dtype) * norm
    return F.grid_sample(image.to(dtype), grid, mode="bilinear", padding_mode="border", align_corners=True)
