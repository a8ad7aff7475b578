"""Image and flow metrics for video prediction, batched in torch, per sample.

Every image metric takes ``prediction`` and ``target`` of shape (B, 3, H, W), float, RGB in
[0, 1], and returns a (B,) float tensor of per-sample scores on the inputs' device, so a whole
batch of full-size Cityscapes frames is scored on the GPU in one call.

Implementations (and what they are checked against in tests/test_metrics.py):

- ``psnr``: ``10 log10(1 / MSE)`` per sample, MSE in float64; equals
  ``skimage.metrics.peak_signal_noise_ratio(data_range=1)``. Identical images give ``inf``.
- ``ssim``: ``pytorch_msssim.ssim`` with an 11-tap Gaussian window, sigma 1.5, K = (0.01, 0.03),
  which is scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=...)``: scikit-image filters with
  'reflect' padding and then drops a 5-pixel border, which is what the valid convolution of
  pytorch-msssim computes directly. Float32 agrees with scikit-image's float64 to ~1e-7.
- ``ms_ssim``: ``pytorch_msssim.ms_ssim`` (5 scales, the standard weights) for images whose
  shorter side exceeds 160 px. Smaller images (e.g. 64 x 96 test crops) cannot be downsampled 4
  times under an 11-tap window; for them the same algorithm runs on as many scales L as fit
  (shorter side > 10 * 2**(L-1)) with the first L standard weights renormalised to sum to 1
  (computed here with pytorch-msssim's window and arithmetic, step for step: its public API
  gives no per-scale terms), unless ``allow_fewer_scales=False``, which raises instead. Such
  numbers are not comparable with published 5-scale MS-SSIM; `ms_ssim_scales(h, w)` says how
  many scales a size gets.
- ``lpips``: the `lpips` package (v0.1, AlexNet trunk, its published linear calibration weights
  shipped inside the package). The AlexNet trunk needs torchvision's ImageNet weights
  ``alexnet-owt-7be5be79.pth`` in ``torch.hub.get_dir()/checkpoints/`` (or a given path). It is
  downloaded there (torchvision's ``AlexNet_Weights.IMAGENET1K_V1``, `ifrvp_core.weights`) only
  when allowed: ``IFRVP_ALLOW_DOWNLOAD=1``, ``download=True`` or ``ifrvp evaluate
  --download_weights``. Otherwise, when the file is absent, ``lpips_status()`` returns a
  `MetricUnavailable` with the reason (the path, the variable, the flag) and ``lpips()`` raises
  `MetricUnavailableError`; the evaluation then reports "n/a (reason)", never a number. Both
  weight files are read with ``torch.load(weights_only=True)``.
- ``epe``: mean end-point error (Euclidean distance of flow vectors, in pixels) over valid pixels.

Channel order (`to_published_channel_order`): DMVFN's published scripts read frames with OpenCV
and score them in BGR order. The evaluation reproduces that on request (``bgr_like_published``)
by flipping the channels of prediction and target before the metrics in
``BGR_FLIPPED_METRICS`` (MS-SSIM and LPIPS, as the published code feeds them). What the flip
really changes, checked in tests/test_metrics.py: PSNR, SSIM and MS-SSIM are computed per
channel and then averaged over channels, so they are invariant to the channel order (MS-SSIM to
float rounding, ~1e-7); LPIPS runs AlexNet, whose first convolution weighs R, G and B
differently, so only LPIPS changes. Off by default: RGB is what the ImageNet trunk expects.

`MetricAccumulator` (`ifrvp_core.metric_accumulator`, importable from here) sums per-sample
scores per (step, metric) over batches and, when ``torch.distributed`` is initialised,
all-reduces sums and counts across ranks before taking means.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytorch_msssim
import torch
import torch.nn as nn
import torch.nn.functional as F

from ifrvp_core.metric_accumulator import MetricAccumulator
from ifrvp_core.weights import (
    ALEXNET, WeightsDownloadError, WeightsNotFoundError, download_allowed, fetch_state_dict, load_pretrained_state, missing_weights_message,
)

__all__ = [
    "ALEXNET_WEIGHTS_FILE",
    "BGR_FLIPPED_METRICS",
    "IMAGE_METRICS",
    "METRIC_DIRECTIONS",
    "MS_SSIM_WEIGHTS",
    "MetricAccumulator",
    "MetricUnavailable",
    "MetricUnavailableError",
    "default_alexnet_weights",
    "epe",
    "fetch_lpips_weights",
    "get_lpips_model",
    "lpips",
    "lpips_status",
    "ms_ssim",
    "ms_ssim_scales",
    "psnr",
    "ssim",
    "to_published_channel_order",
]

# The per-frame image metrics of this module (what an evaluation can compute per step; EPE is a flow score).
IMAGE_METRICS = ("psnr", "ssim", "ms_ssim", "lpips")
# Published MS-SSIM scale weights (Wang et al. 2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
ALEXNET_WEIGHTS_FILE = ALEXNET.file_name  # alexnet-owt-7be5be79.pth
# Values slightly outside [0, 1] come from bilinear resampling and float rounding; real range
# mistakes (0..255 images, [-1, 1] normalisation) are far outside this.
RANGE_TOLERANCE = 1e-3
# +1: higher is better, -1: lower is better (used for best/worst-sample reports).
METRIC_DIRECTIONS = {"psnr": 1, "ssim": 1, "ms_ssim": 1, "lpips": -1, "epe": -1}
# The metrics DMVFN's published scripts compute on BGR frames (see `to_published_channel_order`);
# of these only LPIPS depends on the channel order.
BGR_FLIPPED_METRICS = ("ms_ssim", "lpips")


def to_published_channel_order(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> BGR, the order DMVFN's scripts score MS-SSIM and LPIPS in (a quirk)."""
    _check_tensor("image", image)
    return image.flip(1)


# --------------------------------------------------------------------------------------------
# validation


def _check_tensor(name: str, value, channels: int | None = 3) -> None:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {value.dtype}")
    if value.dim() != 4:
        raise ValueError(f"{name} must be (B, C, H, W), got shape {tuple(value.shape)}")
    if channels is not None and value.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels (B, {channels}, H, W), got shape {tuple(value.shape)}")


def _check_images(prediction: torch.Tensor, target: torch.Tensor, min_side: int = 1) -> None:
    """Raise ValueError naming the argument for wrong type, dtype, shape or value range."""
    _check_tensor("prediction", prediction)
    _check_tensor("target", target)
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction and target shapes differ: prediction {tuple(prediction.shape)} vs target {tuple(target.shape)}"
        )
    if min(prediction.shape[-2:]) < min_side:
        raise ValueError(
            f"images of size {tuple(prediction.shape[-2:])} are too small: this metric needs at least "
            f"{min_side} px per side"
        )
    for name, value in (("prediction", prediction), ("target", target)):
        if value.numel() == 0:
            raise ValueError(f"{name} is empty, shape {tuple(value.shape)}")
        low, high = float(value.min()), float(value.max())
        if math.isnan(low) or math.isnan(high):
            raise ValueError(f"{name} contains NaN")
        if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
            raise ValueError(
                f"{name} values must be in [0, 1]; got min {low:.4g}, max {high:.4g} "
                "(0..255 images must be divided by 255 first)"
            )


# --------------------------------------------------------------------------------------------
# PSNR, SSIM, MS-SSIM


def _float(image: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32 (SSIM statistics need the precision); float32/64 unchanged."""
    return image if image.dtype in (torch.float32, torch.float64) else image.float()


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB with data range 1.

    Args:
        prediction: (B, 3, H, W) in [0, 1].
        target: (B, 3, H, W) in [0, 1].

    Returns:
        (B,) float32; ``inf`` where a sample is reproduced exactly.
    """
    _check_images(prediction, target)
    # float64: at PSNR ~ 50 dB float32 squared errors lose the digits scikit-image keeps.
    mse = (prediction.double() - target.double()).pow(2).flatten(1).mean(dim=1)
    return (10.0 * torch.log10(1.0 / mse)).float()


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity, Gaussian window 11 x 11 (sigma 1.5), mean over channels.

    Args:
        prediction: (B, 3, H, W) in [0, 1], H and W at least 11.
        target: (B, 3, H, W) in [0, 1].

    Returns:
        (B,) float32, equal to scikit-image's `structural_similarity` with
        ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1``.
    """
    _check_images(prediction, target, min_side=SSIM_WINDOW)
    value = pytorch_msssim.ssim(
        _float(prediction), _float(target), data_range=1.0, size_average=False,
        win_size=SSIM_WINDOW, win_sigma=SSIM_SIGMA, K=(0.01, 0.03),
    )
    return value.float()


def ms_ssim_scales(height: int, width: int) -> int:
    """Number of MS-SSIM scales an image of this size gets (5 when the shorter side > 160)."""
    smaller = min(height, width)
    levels = 0
    for level in range(1, len(MS_SSIM_WEIGHTS) + 1):
        # pytorch-msssim's own size rule for 5 scales, generalised to L scales.
        if smaller > (SSIM_WINDOW - 1) * 2 ** (level - 1):
            levels = level
    return levels


def ms_ssim(prediction: torch.Tensor, target: torch.Tensor, allow_fewer_scales: bool = True) -> torch.Tensor:
    """Multi-scale SSIM as pytorch-msssim computes it.

    Args:
        prediction: (B, 3, H, W) in [0, 1].
        target: (B, 3, H, W) in [0, 1].
        allow_fewer_scales: for images with a shorter side <= 160 px, use as many scales as fit
            with renormalised weights (see the module docstring); False raises ValueError.

    Returns:
        (B,) float32 in [0, 1].
    """
    _check_images(prediction, target, min_side=SSIM_WINDOW)
    height, width = prediction.shape[-2:]
    levels = ms_ssim_scales(height, width)
    x, y = _float(prediction), _float(target)
    if levels == len(MS_SSIM_WEIGHTS):
        value = pytorch_msssim.ms_ssim(
            x, y, data_range=1.0, size_average=False, win_size=SSIM_WINDOW, win_sigma=SSIM_SIGMA,
            weights=list(MS_SSIM_WEIGHTS), K=(0.01, 0.03),
        )
        return value.float()
    if not allow_fewer_scales or levels < 1:
        raise ValueError(
            f"ms_ssim needs a shorter side > {(SSIM_WINDOW - 1) * 2 ** 4} px for 5 scales; got images of "
            f"{height}x{width}" + ("" if levels else " (too small for even one scale)")
        )
    weights = torch.tensor(MS_SSIM_WEIGHTS[:levels], dtype=x.dtype, device=x.device)
    return _ms_ssim_levels(x, y, weights / weights.sum()).float()


def _ms_ssim_levels(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """pytorch-msssim's MS-SSIM loop for any number of scales (its size assertion is fixed at 5).

    x, y: (B, C, H, W); weights: (L,). Returns (B,).
    """
    window = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA).to(x)
    contrast_structure = []
    levels = weights.shape[0]
    for level in range(levels):
        ssim_per_channel, cs = _ssim_and_contrast_structure(x, y, window)
        if level < levels - 1:
            contrast_structure.append(torch.relu(cs))
            padding = [side % 2 for side in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=padding)
            y = F.avg_pool2d(y, kernel_size=2, padding=padding)
    stacked = torch.stack(contrast_structure + [torch.relu(ssim_per_channel)], dim=0)  # (L, B, C)
    return torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean(dim=1)


def _gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """The normalised 1-D Gaussian of `size` taps, (size,) float32, as pytorch-msssim builds it."""
    coords = torch.arange(size, dtype=torch.float) - size // 2
    window = torch.exp(-(coords**2) / (2 * sigma**2))
    return window / window.sum()


def _gaussian_blur(image: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H - n + 1, W - n + 1): the separable valid Gaussian filter of
    pytorch-msssim (rows, then columns; a side shorter than the window is left unfiltered)."""
    channels = image.shape[1]
    kernel = window.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)  # (C, 1, 1, n)
    out = image
    for axis, side in enumerate(image.shape[2:]):
        if side >= window.numel():
            out = F.conv2d(out, weight=kernel.transpose(2 + axis, -1), stride=1, padding=0, groups=channels)
        else:
            warnings.warn(f"Skipping Gaussian Smoothing at dimension 2+{axis} for input: {image.shape} and win size: {window.numel()}")
    return out


def _ssim_and_contrast_structure(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, k=(0.01, 0.03)):
    """Per-channel SSIM and contrast-structure term of (B, C, H, W) images in [0, 1]: two (B, C).

    The arithmetic of pytorch-msssim's SSIM (data range 1), step by step, so that the
    fewer-scale MS-SSIM gives the same numbers as its 5-scale one.
    """
    c1, c2 = k[0] ** 2, k[1] ** 2
    window = window.to(x.device, dtype=x.dtype)
    mu1, mu2 = _gaussian_blur(x, window), _gaussian_blur(y, window)
    mu1_sq, mu2_sq, mu1_mu2 = mu1.pow(2), mu2.pow(2), mu1 * mu2
    sigma1_sq = _gaussian_blur(x * x, window) - mu1_sq
    sigma2_sq = _gaussian_blur(y * y, window) - mu2_sq
    sigma12 = _gaussian_blur(x * y, window) - mu1_mu2
    cs_map = (2 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
    ssim_map = ((2 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1)) * cs_map
    return torch.flatten(ssim_map, 2).mean(-1), torch.flatten(cs_map, 2).mean(-1)


# --------------------------------------------------------------------------------------------
# LPIPS


@dataclass(frozen=True)
class MetricUnavailable:
    """A metric that could not be computed, with the reason (falsy; prints as "n/a (reason)")."""

    metric: str
    reason: str

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"n/a ({self.reason})"


class MetricUnavailableError(RuntimeError):
    """Raised by `lpips` when its weights are missing; `.status` holds the MetricUnavailable."""

    def __init__(self, status: MetricUnavailable):
        super().__init__(f"{status.metric} unavailable: {status.reason}")
        self.status = status


def default_alexnet_weights() -> Path:
    """Where torchvision keeps the ImageNet AlexNet weights: torch.hub.get_dir()/checkpoints/."""
    return ALEXNET.cache_path()


def _resolve_alexnet_weights(weights_path=None) -> tuple[Path, str | None]:
    """(the AlexNet file, where an explicit path came from; None for the hub cache default)."""
    if weights_path is not None:
        return Path(weights_path), "--lpips_weights"
    if os.environ.get("IFRVP_ALEXNET_WEIGHTS"):
        return Path(os.environ["IFRVP_ALEXNET_WEIGHTS"]), "IFRVP_ALEXNET_WEIGHTS"
    return default_alexnet_weights(), None


def lpips_status(weights_path=None, download: bool = False) -> MetricUnavailable | None:
    """None when LPIPS (alex) can be computed (or its hub-cache file may be downloaded: `download`
    or IFRVP_ALLOW_DOWNLOAD=1), else a MetricUnavailable naming the missing file and how to get it."""
    path, source = _resolve_alexnet_weights(weights_path)
    if not path.is_file():
        if source is not None:
            return MetricUnavailable("lpips", f"AlexNet ImageNet weights not found at {path} (given by {source})")
        if not download_allowed(download):
            return MetricUnavailable("lpips", missing_weights_message(ALEXNET, path) + " (or set IFRVP_ALEXNET_WEIGHTS to the file)")
    try:
        import lpips as _lpips  # noqa: F401  (optional: without the package LPIPS is n/a, not an import error)
    except ImportError as error:
        return MetricUnavailable("lpips", f"the lpips package is not installed ({error})")
    return None


def fetch_lpips_weights(weights_path=None) -> Path:
    """Download the AlexNet weights into the hub cache unless they are there (`--download_weights`); their path.

    An explicit `weights_path` (or IFRVP_ALEXNET_WEIGHTS) is used as it is: nothing is downloaded in its place.
    """
    path, source = _resolve_alexnet_weights(weights_path)
    if source is None and not path.is_file():
        fetch_state_dict(ALEXNET)
    return path


_LPIPS_CACHE: dict[tuple, nn.Module] = {}


def get_lpips_model(device="cpu", weights_path=None, download: bool = False) -> nn.Module:
    """The lpips.LPIPS(net='alex', version='0.1') module.

    The trunk is constructed with random weights (``pnet_rand=True``) and the AlexNet ImageNet
    ``features`` weights are loaded from `weights_path` (default: the torch hub cache, downloaded
    there first only when `download` or IFRVP_ALLOW_DOWNLOAD=1 allows it); the linear
    calibration weights come from the file shipped in the lpips package. Cached per (device,
    weights file). Raises MetricUnavailableError when the AlexNet file is missing.
    """
    status = lpips_status(weights_path, download)
    if status is not None:
        raise MetricUnavailableError(status)
    path, source = _resolve_alexnet_weights(weights_path)
    path = path.resolve()
    device = torch.device(device)
    key = (str(device), str(path), path.stat().st_mtime_ns if path.is_file() else None)
    model = _LPIPS_CACHE.get(key)
    if model is not None:
        return model

    import lpips as _lpips  # optional, and it loads torchvision: imported only when LPIPS is computed

    with warnings.catch_warnings():  # torchvision's deprecation notice for alexnet(pretrained=False)
        warnings.simplefilter("ignore", UserWarning)
        model = _lpips.LPIPS(net="alex", version="0.1", pretrained=False, pnet_rand=True, verbose=False)
    linear_file = Path(_lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    linear_state = torch.load(linear_file, map_location="cpu", weights_only=True)
    _, unexpected = model.load_state_dict(linear_state, strict=False)
    # `lins.k` are aliases of `link`, so only the five `link` weights must come from the file.
    if unexpected or not {f"lin{k}.model.1.weight" for k in range(5)} <= set(linear_state):
        raise MetricUnavailableError(MetricUnavailable("lpips", f"unexpected LPIPS linear weights in {linear_file}"))

    try:
        alexnet_state = load_pretrained_state(ALEXNET, path if source else None, download, path_source=str(source))
    except (WeightsNotFoundError, WeightsDownloadError) as error:  # no file, no permission / a failed download
        raise MetricUnavailableError(MetricUnavailable("lpips", str(error))) from error
    except Exception as error:
        raise MetricUnavailableError(
            MetricUnavailable("lpips", f"cannot read AlexNet weights {path}: {type(error).__name__}: {error}")
        ) from error
    # lpips splits torchvision's alexnet.features into slices that keep the original indices:
    # features.{0,3,6,8,10} are the convolutions.
    slices = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}
    trunk_state = {}
    for index, slice_number in slices.items():
        for kind in ("weight", "bias"):
            source_key = f"features.{index}.{kind}"
            if not isinstance(alexnet_state, dict) or source_key not in alexnet_state:
                raise MetricUnavailableError(
                    MetricUnavailable("lpips", f"{path} is not a torchvision AlexNet state_dict (no {source_key!r})")
                )
            trunk_state[f"slice{slice_number}.{index}.{kind}"] = alexnet_state[source_key]
    try:
        model.net.load_state_dict(trunk_state, strict=True)
    except RuntimeError as error:
        raise MetricUnavailableError(
            MetricUnavailable("lpips", f"{path} does not fit AlexNet: {str(error).splitlines()[0]}")
        ) from error
    model = model.eval().requires_grad_(False).to(device)
    _LPIPS_CACHE[key] = model
    return model


def lpips(prediction: torch.Tensor, target: torch.Tensor, weights_path=None) -> torch.Tensor:
    """LPIPS v0.1 (AlexNet) distance, lower is better.

    Args:
        prediction: (B, 3, H, W) in [0, 1] (mapped to [-1, 1] as LPIPS expects).
        target: (B, 3, H, W) in [0, 1].
        weights_path: AlexNet ImageNet weights file (default: torch hub cache).

    Returns:
        (B,) float32. Raises MetricUnavailableError when the AlexNet weights are absent.
    """
    _check_images(prediction, target)
    model = get_lpips_model(prediction.device, weights_path)
    with torch.inference_mode():
        value = model(prediction.float().clamp(0, 1) * 2 - 1, target.float().clamp(0, 1) * 2 - 1)
    return value.flatten(1).mean(dim=1)


# --------------------------------------------------------------------------------------------
# flow


def epe(flow: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean end-point error per sample.

    Args:
        flow: (B, 2N, H, W) predicted flows, N >= 1 flow fields stacked as (x, y) pairs.
        gt: (B, 2N, H, W) ground-truth flows.
        valid: optional (B, N, H, W), (B, 1, H, W) or (B, H, W) mask; pixels where it is 0 are
            ignored (per flow field when it has N channels).

    Returns:
        (B,) mean Euclidean error in pixels over valid pixels of all N fields; NaN for a sample
        without any valid pixel.
    """
    for name, value in (("flow", flow), ("gt", gt)):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ValueError(f"{name} must be a float tensor, got {getattr(value, 'dtype', type(value).__name__)}")
        if value.dim() != 4 or value.shape[1] % 2:
            raise ValueError(f"{name} must be (B, 2N, H, W), got shape {tuple(value.shape)}")
    if flow.shape != gt.shape:
        raise ValueError(f"flow and gt shapes differ: flow {tuple(flow.shape)} vs gt {tuple(gt.shape)}")
    batch, channels, height, width = flow.shape
    fields = channels // 2
    error = (flow.float() - gt.float()).view(batch, fields, 2, height, width).norm(dim=2)  # (B, N, H, W)
    if valid is None:
        return error.flatten(1).mean(dim=1)
    if valid.dim() == 3:
        valid = valid.unsqueeze(1)
    if valid.dim() != 4 or valid.shape[0] != batch or valid.shape[-2:] != (height, width) or valid.shape[1] not in (1, fields):
        raise ValueError(
            f"valid must be (B, {fields}, H, W), (B, 1, H, W) or (B, H, W) matching flow {tuple(flow.shape)}; "
            f"got shape {tuple(valid.shape)}"
        )
    weight = valid.to(error.dtype).expand_as(error)
    return (error * weight).flatten(1).sum(dim=1) / weight.flatten(1).sum(dim=1)
