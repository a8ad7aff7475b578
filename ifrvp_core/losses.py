"""Training losses: the published IFRNet recipe plus Laplacian, perceptual and frequency terms.

Every term is a plain function on tensors; `PredictionLoss` weighs them by a `LossConfig` and
takes the model's output dict (see docs/architecture.md), so no loss lives inside the model.
All terms are exactly zero on identical inputs and positive otherwise.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from ifrvp_core.models.ifrnet import prior_shift
from ifrvp_core.weights import VGG19, load_pretrained_state


# ----------------------------------------------------------------------------- reconstruction
def charbonnier_loss(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """mean(sqrt(d^2 + eps)) - sqrt(eps): a smooth L1; the constant makes identical inputs give 0.

    prediction, target: (B, C, H, W).
    """
    return charbonnier_map(prediction, target, eps).mean()


def charbonnier_map(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The per-element Charbonnier penalty sqrt(d^2 + eps) - sqrt(eps), same shape as the inputs."""
    return torch.sqrt((prediction - target) ** 2 + eps) - math.sqrt(eps)


def rmse_loss(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over samples of each sample's root-mean-square error, sqrt(mean(d^2) + eps) - sqrt(eps).

    Inside a sample the pixel errors are squared before they are averaged, as in PSNR (a per-frame
    MSE): where a pixel's future is uncertain it is minimised by the mean of what it may be, while
    Charbonnier, a smooth L1, settles on their median. The square root keeps the gradient's size
    that of an L1 term, so it needs no re-weighting against the other terms.
    prediction, target: (B, C, H, W).
    """
    per_sample = (prediction - target).pow(2).flatten(1).mean(1)
    floor = torch.sqrt(per_sample.new_tensor(eps))  # in the inputs' precision, so identical inputs give exactly 0
    return (torch.sqrt(per_sample + eps) - floor).mean()


def boundary_loss(prediction: torch.Tensor, target: torch.Tensor, prior_flow: torch.Tensor, shift_px: float = 1.0,
                  eps: float = 1e-6) -> torch.Tensor:
    """Charbonnier where the motion prior is sampled off: at motion boundaries, where a correction can be learned.

    The weight of a pixel is min(|shift| / shift_px, 1), `shift` the newest frame's `prior_shift`
    (zero where the motion is uniform, the displacement at motion boundaries). Where the motion is
    uniform the prior's error is the velocity changing between frames, which two context frames do
    not show; the plain Charbonnier's gradient there is mostly that unpredictable part.
    prediction, target (B, 3, H, W); prior_flow (B, 2K, H, W) in pixels. Mean over all pixels.
    """
    with torch.no_grad():  # the prior is data, not a parameter
        shift = prior_shift(prior_flow.float())[:, -2:]
        weight = (shift.norm(dim=1, keepdim=True) / shift_px).clamp(max=1.0).to(prediction.dtype)
    return (weight * charbonnier_map(prediction, target, eps)).mean()


def _patch_transform(image: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Census-style transform: each pixel's neighbours minus the centre, soft-normalised.

    (N, 1, H, W) -> (N, P*P, H, W) with values in (-1, 1).
    """
    identity = torch.eye(patch_size * patch_size, device=image.device, dtype=image.dtype)
    weight = identity.view(patch_size * patch_size, 1, patch_size, patch_size)
    patches = F.conv2d(image, weight, padding=patch_size // 2)
    transformed = patches - image
    return transformed / torch.sqrt(0.81 + transformed**2)


def _census_distance(t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """Soft Hamming distance e^2 / (0.1 + e^2) averaged over the patch channels: (N,1,H,W)."""
    e = (t1 - t2) ** 2
    return (e / (0.1 + e)).mean(dim=1, keepdim=True)


def _border_mask(like: torch.Tensor, border: int) -> torch.Tensor:
    mask = torch.zeros_like(like[:, :1])
    mask[:, :, border:-border, border:-border] = 1.0
    return mask


def census_loss(prediction: torch.Tensor, target: torch.Tensor, patch_size: int = 7) -> torch.Tensor:
    """Ternary/census loss on 7x7 patches of the channel-mean image (target side detached).

    prediction, target: (B, 3, H, W). A `patch_size // 2` pixel border is masked out.
    """
    t_pred = _patch_transform(prediction.mean(dim=1, keepdim=True), patch_size)
    t_true = _patch_transform(target.mean(dim=1, keepdim=True), patch_size).detach()
    distance = _census_distance(t_pred, t_true)
    return (distance * _border_mask(distance, patch_size // 2)).mean()


def geometry_loss(refined_features: list, target_features: list, patch_size: int = 3) -> torch.Tensor:
    """Feature geometry consistency: census on 3x3 patches of every feature channel, summed over levels.

    refined_features / target_features: lists of (B, C_l, H_l, W_l) (decoder output vs. encoder
    features of the true target); the target side is detached.
    """
    total = refined_features[0].new_zeros(())
    for refined, true in zip(refined_features, target_features):
        b, c, h, w = refined.shape
        t_ref = _patch_transform(refined.reshape(b * c, 1, h, w), patch_size)
        t_true = _patch_transform(true.detach().reshape(b * c, 1, h, w), patch_size)
        # average the patch distance over channels as well: (B*C,1,H,W) -> (B,1,H,W)
        distance = _census_distance(t_ref, t_true).view(b, c, h, w).mean(dim=1, keepdim=True)
        total = total + (distance * _border_mask(distance, patch_size // 2)).mean()
    return total


def _robust_charbonnier(difference: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """mean((d^2 + eps^2)^(w/2) - eps^w), eps = 10^(-(10w-1)/3); the shift zeroes d = 0.

    The subtracted term depends only on the (detached) weight, so gradients are unchanged.
    """
    eps = 10.0 ** (-(10.0 * weight - 1.0) / 3.0)
    value = (difference**2 + eps**2) ** (weight / 2.0) - eps**weight
    return value.mean()


def flow_distillation_loss(flows: list, teacher_flow: torch.Tensor, beta: float = 0.3) -> torch.Tensor:
    """Task-oriented flow distillation (IFRNet): robust Charbonnier to a teacher flow.

    flows: fine->coarse list of (B, 2K, h, w) from the model; teacher_flow: (B, 2K, H, W).
    The per-pixel, per-frame weight w = exp(-beta * EPE(final flow, teacher)) is detached;
    levels 2, 3, 4 are upsampled x2, x4, x8 (and multiplied by the same factor). beta = 0.3 is
    IFRNet's (a noisy teacher's large disagreements count little); beta = 0 gives w = 1, a plain
    Charbonnier that pulls large flow errors back too (for a teacher computed from the true target).
    """
    b, channels, height, width = teacher_flow.shape
    k = channels // 2
    final = flows[0].detach()
    epe = (final - teacher_flow).view(b, k, 2, height, width).norm(dim=2)  # (B, K, H, W)
    weight = torch.exp(-beta * epe).repeat_interleave(2, dim=1)  # per flow channel
    total = teacher_flow.new_zeros(())
    for level, flow in enumerate(flows[1:4], start=1):
        factor = 2**level
        upsampled = factor * F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
        total = total + _robust_charbonnier(upsampled - teacher_flow, weight)
    return total


# ----------------------------------------------------------------------------- mission terms
def _gaussian_kernel(channels: int, device, dtype) -> torch.Tensor:
    row = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device, dtype=dtype)
    kernel = torch.outer(row, row) / 256.0
    return kernel.expand(channels, 1, 5, 5).contiguous()


def laplacian_pyramid(image: torch.Tensor, levels: int = 5) -> list[torch.Tensor]:
    """Band-pass levels (fine first) plus the low-pass residual: list of (B, C, H/2^j, W/2^j)."""
    kernel = _gaussian_kernel(image.shape[1], image.device, image.dtype)
    pyramid, current = [], image
    for _ in range(levels - 1):
        blurred = F.conv2d(F.pad(current, (2, 2, 2, 2), mode="reflect"), kernel, groups=current.shape[1])
        down = blurred[..., ::2, ::2]
        up = F.interpolate(down, size=current.shape[-2:], mode="bilinear", align_corners=False)
        pyramid.append(current - up)
        current = down
        if min(current.shape[-2:]) < 5:
            break
    pyramid.append(current)
    return pyramid


def laplacian_loss(prediction: torch.Tensor, target: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """Laplacian-pyramid L1 with weights 2^j on level j (coarse bands count more, as in LapLoss).

    prediction, target: (B, C, H, W).
    """
    total = prediction.new_zeros(())
    for j, (a, b) in enumerate(zip(laplacian_pyramid(prediction, levels), laplacian_pyramid(target, levels))):
        total = total + (2.0**j) * (a - b).abs().mean()
    return total


def frequency_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the real and imaginary parts of the orthonormal 2-D FFTs (amplitude and phase).

    prediction, target: (B, C, H, W).
    """
    a = torch.fft.rfft2(prediction, norm="ortho")
    b = torch.fft.rfft2(target, norm="ortho")
    return (torch.view_as_real(a) - torch.view_as_real(b)).abs().mean()


VGG19_FILE = VGG19.file_name  # vgg19-dcbb9e9d.pth
# relu1_2, relu2_2, relu3_4, relu4_4, relu5_4 in torchvision's vgg19().features
VGG19_LAYERS = (3, 8, 17, 26, 35)


class VGGPerceptual(nn.Module):
    """L1 between VGG19 features (relu1_2 ... relu5_4) of prediction and target.

    ImageNet weights are read from `weights_path`, else from the torch hub cache
    (`<torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth`), downloaded there first only when
    `download` or IFRVP_ALLOW_DOWNLOAD=1 allows it (`ifrvp_core.weights`); a missing file is a
    FileNotFoundError naming the path. Inputs (B, 3, H, W) in [0, 1].
    """

    def __init__(self, weights_path: str | None = None, layers=VGG19_LAYERS, download: bool = False):
        super().__init__()
        # imported here: torchvision.models takes 1.4 s to import, and most runs have no perceptual term
        from torchvision.models import vgg19

        features = vgg19(weights=None).features
        # The trainer has no download flag of its own (yet): its message names the variable only.
        state = load_pretrained_state(VGG19, weights_path or None, download, flag=None, path_source="perceptual_weights")
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")} or state
        features.load_state_dict(state)
        self.layers = tuple(layers)
        self.features = features[: max(self.layers) + 1].eval()
        for parameter in self.features.parameters():
            parameter.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.features.eval()  # frozen feature extractor
        return self

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = (prediction - self.mean) / self.std
        y = ((target - self.mean) / self.std).detach()
        total = prediction.new_zeros(())
        for index, layer in enumerate(self.features):
            x, y = layer(x), layer(y)
            if index in self.layers:
                total = total + (x - y).abs().mean()
        return total


# ----------------------------------------------------------------------------- config + combination
@dataclass
class LossConfig:
    """Weights of each term; 0 switches a term off. Defaults: the published recipe."""

    charbonnier: float = 1.0
    census: float = 1.0
    geometry: float = 0.01
    distillation: float = 0.01
    distillation_beta: float = 0.3  # robustness of the distillation (0 = plain Charbonnier)
    laplacian: float = 0.0
    perceptual: float = 0.0
    frequency: float = 0.0
    boundary: float = 0.0  # Charbonnier at motion boundaries (needs a motion prior)
    rmse: float = 0.0  # per-sample RMSE: the mean-seeking reconstruction term PSNR rewards
    perceptual_weights: str | None = None

    @classmethod
    def from_dict(cls, values: dict) -> "LossConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown loss config keys: {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


class PredictionLoss(nn.Module):
    """Weighted sum of the active terms.

    forward(output: model dict, target (B,3,H,W), teacher_flow (B,2K,H,W) | None)
        -> (total scalar, {term name: detached scalar})

    `download_weights` lets the perceptual term fetch its VGG19 weights into the torch hub cache
    when they are missing (as IFRVP_ALLOW_DOWNLOAD=1 does); they are loaded on first use.
    """

    def __init__(self, config: LossConfig | None = None, download_weights: bool = False):
        super().__init__()
        self.config = config or LossConfig()
        self.download_weights = download_weights
        self.perceptual_net = None

    def forward(self, output: dict, target: torch.Tensor, teacher_flow: torch.Tensor | None = None):
        config, prediction = self.config, output["prediction"]
        terms = {}
        if config.charbonnier:
            terms["charbonnier"] = (config.charbonnier, charbonnier_loss(prediction, target))
        if config.rmse:
            terms["rmse"] = (config.rmse, rmse_loss(prediction, target))
        if config.census:
            terms["census"] = (config.census, census_loss(prediction, target))
        if config.geometry and "target_features" in output:
            terms["geometry"] = (config.geometry, geometry_loss(output["refined_features"], output["target_features"]))
        if config.distillation and teacher_flow is not None:
            terms["distillation"] = (config.distillation, flow_distillation_loss(output["flows"], teacher_flow, config.distillation_beta))
        if config.laplacian:
            terms["laplacian"] = (config.laplacian, laplacian_loss(prediction, target))
        if config.frequency:
            terms["frequency"] = (config.frequency, frequency_loss(prediction, target))
        if config.boundary and "prior_flow" in output:
            terms["boundary"] = (config.boundary, boundary_loss(prediction, target, output["prior_flow"]))
        if config.perceptual:
            if self.perceptual_net is None:
                self.perceptual_net = VGGPerceptual(config.perceptual_weights, download=self.download_weights).to(prediction.device)
            terms["perceptual"] = (config.perceptual, self.perceptual_net(prediction, target))
        total = sum(weight * value for weight, value in terms.values())
        return total, {name: value.detach() for name, (_, value) in terms.items()}
