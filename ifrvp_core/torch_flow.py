"""Dense coarse-to-fine Lucas–Kanade optical flow in pure torch: batched, on the frames' own device.

The motion prior's OpenCV DIS runs on the CPU, one uint8 pair at a time; on a GPU that stalls the
device between the network's kernels. `lucas_kanade_flow` computes a dense flow with plain torch
ops (running sums, `grid_sample`), so a whole batch stays where the frames are:

- both frames turn gray with OpenCV's RGB weights and are lightly smoothed (3x3 mean);
- a pyramid of 2x reductions is built down to about `MIN_LEVEL_SIZE` pixels on the short side;
- from the coarsest level to the finest, the flow upsampled from the level below is refined by a
  few Gauss–Newton iterations: warp the destination by the current flow, linearise with the mean
  of both frames' gradients, and solve every pixel's 2x2 normal equations over a tent-shaped
  window (the structure tensor) with a small Tikhonov term, so flat regions keep the flow they
  had instead of blowing up;
- between levels the flow is median-filtered (3x3), which removes the isolated outliers of
  untextured or occluded windows before the upsampling magnifies them.

Window sums are running sums (`cumsum`): O(1) per pixel whatever the window, and several times
cheaper on the CPU than `avg_pool2d` or grouped convolutions.

Convention (the same as `motion_prior.dis_flow_batch`): ``source(p) ~ destination(p + flow(p))``,
channel 0 is x (right), channel 1 is y (down), in pixels of the input size.

    >>> flow = lucas_kanade_flow(newest, previous)      # (N, 3, H, W) x2 in [0, 1] -> (N, 2, H, W)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ifrvp_core.warp import backward_warp

__all__ = ["GRAY_WEIGHTS", "MIN_LEVEL_SIZE", "lucas_kanade_flow", "pyramid_levels", "to_gray"]

# OpenCV's RGB -> gray weights (cv2.COLOR_RGB2GRAY), so both priors see the same brightness.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
# The coarsest pyramid level keeps at least this many pixels on the short side: smaller levels have
# too few pixels per window for a stable structure tensor.
MIN_LEVEL_SIZE = 16
MAX_LEVELS = 8


def to_gray(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 1, H, W) gray with OpenCV's weights (`GRAY_WEIGHTS`)."""
    weights = images.new_tensor(GRAY_WEIGHTS).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def pyramid_levels(height: int, width: int, min_size: int = MIN_LEVEL_SIZE) -> int:
    """Pyramid levels for an H x W image: halve while the short side stays >= `min_size` (1..MAX_LEVELS)."""
    short = min(int(height), int(width))
    if short < 1:
        raise ValueError(f"pyramid_levels needs a positive image size, got {height}x{width}")
    return max(1, min(MAX_LEVELS, 1 + int(math.floor(math.log2(max(short / min_size, 1.0))))))


def box_mean_along(images: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Mean over a window of `size` (odd) pixels along `dim` (2: y, 3: x) of (N, C, H, W), inside the image.

    A running sum (`cumsum`) and one difference: O(1) per pixel whatever the window, several times
    cheaper on the CPU than `avg_pool2d` or a grouped convolution. Near the edges the mean is over
    the pixels that exist (no padding values enter).
    """
    radius, length = size // 2, images.shape[dim]
    pad = (radius + 1, radius, 0, 0) if dim == 3 else (0, 0, radius + 1, radius)
    running = F.pad(images, pad).cumsum(dim)
    sums = running.narrow(dim, size, length) - running.narrow(dim, 0, length)
    index = torch.arange(length, device=images.device)
    count = (index.clamp(max=length - 1 - radius) - index.clamp(min=radius) + 2 * radius + 1).to(images.dtype)
    return sums / count.view((1, 1, length, 1) if dim == 2 else (1, 1, 1, length))


def box_blur(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H, W) mean over each pixel's `size` x `size` window (odd), inside the image."""
    return box_mean_along(box_mean_along(images, size, 3), size, 2)


def window_sum(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H, W) weighted window mean: two box passes of `size // 2 + 1` (a tent-shaped window of `size`)."""
    half = size // 2 + (1 - (size // 2) % 2)  # odd box so the window stays centred
    return box_blur(box_blur(images, half), half)


def image_gradients(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) -> (N, 2, H, W) central-difference gradients (d/dx, d/dy), edges replicated."""
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    dx = 0.5 * (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2])
    dy = 0.5 * (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1])
    return torch.cat([dx, dy], dim=1)


def median3x3(flow: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H, W) per-channel 3x3 median, edges replicated."""
    n, c, h, w = flow.shape
    patches = F.unfold(F.pad(flow, (1, 1, 1, 1), mode="replicate"), kernel_size=3)  # (N, C*9, H*W)
    return patches.view(n, c, 9, h * w).median(dim=2).values.view(n, c, h, w)


def downsample(images: torch.Tensor) -> torch.Tensor:
    """Anti-aliased 2x reduction: (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2)), a 3x3 mean then 2x2 means."""
    return F.avg_pool2d(box_blur(images, 3), 2, ceil_mode=True)


def upsample_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, 2, h, w) flow -> (N, 2, H, W) at `size`, its x and y scaled to the new level's pixels."""
    h, w = flow.shape[-2:]
    scale = flow.new_tensor([size[1] / w, size[0] / h]).view(1, 2, 1, 1)
    return F.interpolate(flow, size=size, mode="bilinear", align_corners=False) * scale


@torch.no_grad()
def lucas_kanade_flow(source: torch.Tensor, destination: torch.Tensor, levels: int | None = None, iterations: int = 4,
                      window: int = 9, regularisation: float = 1e-4, median: bool = True, symmetric: bool = True,
                      max_step: float = 1.0) -> torch.Tensor:
    """Dense pyramidal Lucas–Kanade flow from each `source` to its `destination`.

    Args:
        source, destination: (N, 3, H, W) float frames in [0, 1], on any device.
        levels: pyramid levels (None: `pyramid_levels(H, W)`, coarsest short side >= 16 px).
        iterations: Gauss–Newton iterations (warp, linearise, solve) at every level.
        window: size (odd, px) of the integration window of the structure tensor, the same at
            every level (a tent-shaped weight: two box means, `window_sum`).
        regularisation: Tikhonov weight added to the 2x2 system's diagonal, in squared gray levels
            per pixel: the flow increment of a window with less gradient energy shrinks to zero.
        median: 3x3 median of the flow between levels.
        symmetric: linearise with the mean of the source's and the warped destination's gradients
            (converges in fewer iterations than the source's alone, at the cost of a new structure
            tensor per iteration).
        max_step: the largest flow increment (px, per component) of one iteration at one level.

    Returns:
        (N, 2, H, W) float32 flow on `source`'s device, ``source(p) ~ destination(p + flow(p))``,
        channel 0 is x, in pixels (the convention of `motion_prior.dis_flow_batch`).
    """
    if source.shape != destination.shape or source.dim() != 4 or source.shape[1] != 3:
        raise ValueError(f"lucas_kanade_flow expects two (N, 3, H, W) tensors of one shape, got {tuple(source.shape)} "
                         f"and {tuple(destination.shape)}")
    if window < 3 or window % 2 == 0:
        raise ValueError(f"window must be an odd integer >= 3, got {window}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    height, width = source.shape[-2:]
    levels = pyramid_levels(height, width) if levels is None else int(levels)
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    # float32 whatever the caller's precision: the 2x2 solve divides by small determinants
    gray0, gray1 = to_gray(source.float()), to_gray(destination.float())
    # light pre-smoothing: the linearisation then holds over a wider range of displacements
    pyramid = [(box_blur(gray0, 3), box_blur(gray1, 3))]
    for _ in range(levels - 1):
        if min(pyramid[-1][0].shape[-2:]) < 2:
            break
        pyramid.append((downsample(pyramid[-1][0]), downsample(pyramid[-1][1])))

    flow = None
    for image0, image1 in reversed(pyramid):
        size = tuple(image0.shape[-2:])
        if flow is None:
            flow = image0.new_zeros(image0.shape[0], 2, *size)
        else:
            flow = upsample_flow(median3x3(flow) if median else flow, size)
        grad0 = image_gradients(image0)  # (N, 2, h, w)
        tensor = None
        for _ in range(iterations):
            warped = backward_warp(image1, flow)
            residual = warped - image0  # (N, 1, h, w)
            # the mean of both frames' gradients (symmetric) needs a new structure tensor every
            # iteration; the source's alone gives one per level
            grad = 0.5 * (grad0 + image_gradients(warped)) if symmetric else grad0
            gx, gy = grad[:, :1], grad[:, 1:]
            if tensor is None or symmetric:  # one window pass for the tensor and the right-hand side
                sums = window_sum(torch.cat([gx * gx, gx * gy, gy * gy, gx * residual, gy * residual], dim=1), window)
                tensor, rhs = sums[:, :3], sums[:, 3:]
                a, b, c = tensor[:, :1] + regularisation, tensor[:, 1:2], tensor[:, 2:3] + regularisation
                inverse_det = 1.0 / (a * c - b * b)  # > 0: the Tikhonov term makes the matrix positive definite
            else:
                rhs = window_sum(grad * residual, window)  # (N, 2, h, w): mean of g * r over the window
            rx, ry = rhs[:, :1], rhs[:, 1:]
            # (A + lambda I) du = -sum g r, clamped: one bad window must not throw the flow far
            step = torch.cat([(c * rx - b * ry) * inverse_det, (a * ry - b * rx) * inverse_det], dim=1)
            flow = flow - step.clamp(-max_step, max_step)
    return flow
