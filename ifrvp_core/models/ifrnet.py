"""The IFRNet family for interpolation and extrapolation (one parametrised implementation).

IFRNet (Kong et al., CVPR 2022) encodes every input frame into a 4-level pyramid, then four
decoders, coarse to fine, jointly refine the target frame's features and the flows from the target
to each input frame. The last decoder also emits a blend mask and an RGB residual:

    prediction = clamp(sum_k mask_k * warp(frame_k, flow_k) + mean + residual, 0, 1)

Module names follow the published code, so official two-frame checkpoints load without renaming.
The target time ``t`` is an input map of the coarsest decoder, so the same weights interpolate
(``0 < t < 1``) and extrapolate (``t > 1``). With K context frames the frames sit at times
``2-K, ..., 0, 1`` (see docs/architecture.md); K = 2 is exactly the published layout.

``motion_prior="dis"`` or ``"lucas_kanade"`` (the extrapolation recipe; off by default, so the
builders give the published network) starts every decoder from the constant-velocity flow of
`ifrvp_core.motion_prior`: decoder4 sees each frame's features warped by the prior, and every
decoder's flow is a *correction* on top of the prior at its level (the prior's own detail is
added back level by level, so the full-resolution flow starts exactly at the prior, not at a
blurred copy of it). The decoders are shown the features aligned by the current flow and the
correction so far, never the absolute motion: a network that sees the motion learns global rules
such as "predict 80 % of it" that fit its training clips and fail on other footage (measured on
a held-out real clip: see README, "Real footage"). The flow, mask and residual outputs start at
zero, so an untrained model already predicts the newest frame moved one step along the
classical flow. Same parameter count as the published network.

Shapes: B batch, K context frames, H x W image size, c1..c4 encoder widths at 1/2..1/16.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ifrvp_core.models.elan import ELANBlock
from ifrvp_core.motion_prior import MOTION_PRIORS, PRIOR_NEWEST_LOGIT, PRIOR_OLDER_LOGIT, constant_velocity_prior
from ifrvp_core.precision import autocast_for
from ifrvp_core.warp import backward_warp


def convrelu(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, padding: int = 1):
    """Conv2d (with bias) followed by a per-channel PReLU, as a two-item Sequential (keys `.0`, `.1`)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=True),
        nn.PReLU(out_channels),
    )


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class ResBlock(nn.Module):
    """IFRNet's residual block; the last `side_channels` channels get an extra conv path.

    (B, C, H, W) -> (B, C, H, W). Written with split/cat (no in-place writes) for autograd.
    """

    def __init__(self, channels: int, side_channels: int):
        super().__init__()
        self.side_channels = side_channels
        self.conv1 = convrelu(channels, channels)
        self.conv2 = convrelu(side_channels, side_channels)
        self.conv3 = convrelu(channels, channels)
        self.conv4 = convrelu(side_channels, side_channels)
        self.conv5 = nn.Conv2d(channels, channels, 3, 1, 1, bias=True)
        self.prelu = nn.PReLU(channels)

    def _refine_side(self, out: torch.Tensor, side_conv: nn.Module) -> torch.Tensor:
        main, side = out.split([out.shape[1] - self.side_channels, self.side_channels], dim=1)
        return torch.cat([main, side_conv(side)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._refine_side(self.conv1(x), self.conv2)
        out = self._refine_side(self.conv3(out), self.conv4)
        return self.prelu(x + self.conv5(out))


class Encoder(nn.Module):
    """Shared 4-level pyramid: (N, 3, H, W) -> [(N, c1, H/2, W/2), ..., (N, c4, H/16, W/16)]."""

    def __init__(self, widths: Sequence[int], first_kernel: int = 3):
        super().__init__()
        c1, c2, c3, c4 = widths
        self.pyramid1 = nn.Sequential(convrelu(3, c1, first_kernel, 2, first_kernel // 2), convrelu(c1, c1))
        self.pyramid2 = nn.Sequential(convrelu(c1, c2, 3, 2, 1), convrelu(c2, c2))
        self.pyramid3 = nn.Sequential(convrelu(c2, c3, 3, 2, 1), convrelu(c3, c3))
        self.pyramid4 = nn.Sequential(convrelu(c3, c4, 3, 2, 1), convrelu(c4, c4))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.pyramid1(image)
        f2 = self.pyramid2(f1)
        f3 = self.pyramid3(f2)
        f4 = self.pyramid4(f3)
        return [f1, f2, f3, f4]


class Decoder(nn.Module):
    """One decoder level: convrelu -> ResBlock (or ELAN block) -> 2x transposed conv.

    (B, in, h, w) -> (B, out, 2h, 2w). The input is assembled by `IFRNetModel`.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, side_channels: int, block: str):
        super().__init__()
        middle = ResBlock(mid_channels, side_channels) if block == "resblock" else ELANBlock(mid_channels)
        self.convblock = nn.Sequential(
            convrelu(in_channels, mid_channels),
            middle,
            nn.ConvTranspose2d(mid_channels, out_channels, 4, 2, 1, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convblock(x)


def _as_time_tensor(t, batch: int, device, dtype) -> torch.Tensor:
    """A float or (B,) sequence/tensor of target times -> (B, 1, 1, 1)."""
    time = torch.as_tensor(t, device=device, dtype=dtype)
    if time.dim() == 0:
        time = time.expand(batch)
    time = time.reshape(-1)
    if time.numel() != batch:
        raise ValueError(f"target time t has {time.numel()} values for a batch of {batch}")
    return time.view(batch, 1, 1, 1)


def warp_each(features: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
    """Warp every frame's map with its own flow in one call.

    features (B, K, C, h, w), flows (B, 2K, h, w) -> (B, K, C, h, w).
    """
    b, k, c, h, w = features.shape
    warped = backward_warp(features.reshape(b * k, c, h, w), flows.reshape(b * k, 2, h, w))
    return warped.reshape(b, k, c, h, w)


def prior_pyramid(prior: torch.Tensor, net_size: tuple, size: tuple) -> list[torch.Tensor]:
    """(B, 2K, H, W) full-size prior in pixels -> [1/16, 1/8, 1/4, 1/2, 1] of the padded network input."""
    k = prior.shape[1] // 2
    if net_size != size:
        ratio = prior.new_tensor([net_size[1] / size[1], net_size[0] / size[0]]).repeat(k).view(1, 2 * k, 1, 1)
        prior = F.interpolate(prior, size=net_size, mode="bilinear", align_corners=False) * ratio
    pad_h, pad_w = (-net_size[0]) % 16, (-net_size[1]) % 16
    if pad_h or pad_w:
        prior = F.pad(prior, (0, pad_w, 0, pad_h), mode="replicate")
    return [F.avg_pool2d(prior, factor) / factor for factor in (16, 8, 4, 2)] + [prior]


def prior_shift(prior: torch.Tensor) -> torch.Tensor:
    """How the prior changes where the target pixel came from: (B, 2K, h, w) -> (B, 2K, h, w).

    `prior(p + prior_newest(p)) - prior(p)` per frame, `prior_newest` the last frame's flow. The
    constant-velocity prior is sampled at the target pixel; the motion that reaches it is the one at
    the pixel it came from (the fixed point of `F(p) = v(p + F(p))`). The shift is that first
    correction: zero for uniform motion, the displacement's size at motion boundaries.
    """
    b, channels, h, w = prior.shape
    k = channels // 2
    newest = prior[:, -2:].repeat(1, k, 1, 1)
    resampled = backward_warp(prior.reshape(b * k, 2, h, w), newest.reshape(b * k, 2, h, w)).reshape(b, channels, h, w)
    return resampled - prior


def network_input(images: torch.Tensor, scale_factor: float) -> tuple[torch.Tensor, tuple[int, int]]:
    """(N, 3, H, W) -> the encoder's input: resized by `scale_factor`, replicate-padded to a multiple of 16.

    Returns the input and the (height, width) the network runs at before padding.
    """
    height, width = int(images.shape[-2]), int(images.shape[-1])  # plain ints also under tracing (export)
    net_height, net_width = height, width
    if scale_factor != 1.0:
        net_height = max(1, round(height * scale_factor))
        net_width = max(1, round(width * scale_factor))
        images = F.interpolate(images, size=(net_height, net_width), mode="bilinear", align_corners=False)
    pad_h, pad_w = (-net_height) % 16, (-net_width) % 16
    if pad_h or pad_w:
        images = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")
    return images, (net_height, net_width)


def to_input_size(flow: torch.Tensor, mask: torch.Tensor, residual: torch.Tensor, net_size: tuple, size: tuple):
    """The full-resolution outputs (padded network size) cropped and resized back to the input's (H, W).

    flow (B, 2K, ...), mask (B, K, ...), residual (B, 3, ...) -> the same at H x W.
    """
    (net_height, net_width), (height, width) = net_size, size
    flow, mask = flow[..., :net_height, :net_width], mask[..., :net_height, :net_width]
    residual = residual[..., :net_height, :net_width]
    if (net_height, net_width) != (height, width):
        # Flows are in pixels, so they scale with the resize (per axis, exact for rounding).
        flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
        ratio = flow.new_tensor([width / net_width, height / net_height]).repeat(flow.shape[1] // 2).view(1, -1, 1, 1)
        flow = flow * ratio
        mask = F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False)
        residual = F.interpolate(residual, size=(height, width), mode="bilinear", align_corners=False)
    return flow, mask, residual


class IFRNetModel(nn.Module):
    """IFRNet with K context frames, for interpolation (0 < t < 1) and extrapolation (t > 1).

    Args:
        widths: encoder widths (c1, c2, c3, c4).
        side_channels: ResBlock side channels `s`.
        first_kernel: kernel of the very first conv (7 for IFRNet_L).
        context_frames: K >= 2 input frames.
        block: "resblock" (published) or "elan".
        motion_prior: "none" (published), "dis" or "lucas_kanade": the decoders refine a
            correction of the constant-velocity flow of OpenCV DIS (CPU) or of the torch
            Lucas–Kanade flow (on the frames' device) (same layers and parameter count).
        prior_shift_input: with a motion prior, every decoder also sees the prior's *shift*
            `prior_shift` (2K channels at its level): how the prior changes when sampled where the
            target pixel came from. It is zero for uniform motion and large at motion boundaries,
            where the constant-velocity flow is sampled one displacement off; it tells where and
            by how much the prior is wrong without showing the motion itself. Adds 2K input
            channels to each decoder's first conv; the untrained model still predicts the prior.
        prior_shift_gate: with a motion prior, decoder1 also emits a gate `g` (one channel), and
            the full-resolution flow gets `g * prior_shift(prior)`: g = 1 samples the prior where
            the target pixel came from (one fixed-point step), g = 0 keeps it where it is. The
            gate starts at 0 (the untrained model predicts the prior), and its gradient is the
            loss's agreement with that correction, so the network learns early where it applies
            instead of building the displacement from its input through every layer. One more
            output channel of decoder1.
    """

    def __init__(
        self,
        widths: Sequence[int] = (32, 48, 72, 96),
        side_channels: int = 32,
        first_kernel: int = 3,
        context_frames: int = 2,
        block: str = "resblock",
        motion_prior: str = "none",
        prior_shift_input: bool = False,
        prior_shift_gate: bool = False,
    ):
        super().__init__()
        if context_frames < 2:
            raise ValueError(f"context_frames must be >= 2, got {context_frames}")
        if block not in ("resblock", "elan"):
            raise ValueError(f"block must be 'resblock' or 'elan', got {block!r}")
        if motion_prior not in MOTION_PRIORS:
            raise ValueError(f"motion_prior must be one of {MOTION_PRIORS}, got {motion_prior!r}")
        if prior_shift_input and motion_prior == "none":
            raise ValueError("prior_shift_input needs a motion prior (motion_prior='dis' or 'lucas_kanade'); the published network has none")
        if prior_shift_gate and motion_prior == "none":
            raise ValueError("prior_shift_gate needs a motion prior (motion_prior='dis' or 'lucas_kanade'); the published network has none")
        c1, c2, c3, c4 = widths
        k = context_frames
        self.context_frames = k
        # K=2 keeps the published single sigmoid logit; K>2 uses one logit per frame (softmax).
        self.mask_channels = 1 if k == 2 else k
        self.model_name = "IFRNet"  # set by the registry
        self.motion_prior = motion_prior
        self.model_options = dict(
            widths=tuple(widths), side_channels=side_channels, first_kernel=first_kernel, block=block
        )
        if motion_prior != "none":  # published checkpoints keep their exact options
            self.model_options["motion_prior"] = motion_prior
        self.prior_shift_input = bool(prior_shift_input)
        if self.prior_shift_input:  # earlier checkpoints, without the key, load as False
            self.model_options["prior_shift_input"] = True
        shift = 2 * k if self.prior_shift_input else 0
        self.prior_shift_gate = bool(prior_shift_gate)
        if self.prior_shift_gate:  # earlier checkpoints, without the key, load as False
            self.model_options["prior_shift_gate"] = True
        gate = 1 if self.prior_shift_gate else 0
        self.encoder = Encoder(widths, first_kernel)
        self.decoder4 = Decoder(k * c4 + 1 + shift, k * c4, 2 * k + c3, side_channels, block)
        self.decoder3 = Decoder((k + 1) * c3 + 2 * k + shift, (k + 1) * c3, 2 * k + c2, side_channels, block)
        self.decoder2 = Decoder((k + 1) * c2 + 2 * k + shift, (k + 1) * c2, 2 * k + c1, side_channels, block)
        self.decoder1 = Decoder((k + 1) * c1 + 2 * k + shift, (k + 1) * c1, 2 * k + self.mask_channels + 3 + gate, side_channels, block)
        if motion_prior != "none":
            self.start_at_prior()

    @torch.no_grad()
    def start_at_prior(self) -> None:
        """Zero every decoder's flow channels and decoder1's mask and residual; favour the newest frame.

        The untrained model then predicts sum_k m_k warp(frame_k, prior_k) with most weight on the
        newest frame: the classical constant-velocity prediction, which training refines. Called at
        construction, and by `checkpoint.init_from_weights` after other weights are loaded.
        """
        if self.motion_prior == "none":
            raise ValueError("start_at_prior needs a motion prior; the published network (motion_prior='none') has none")
        k = self.context_frames
        for decoder in (self.decoder4, self.decoder3, self.decoder2):
            last = decoder.convblock[-1]  # ConvTranspose2d: weight (in, out, 4, 4)
            last.weight[:, : 2 * k].zero_()
            last.bias[: 2 * k].zero_()
        last = self.decoder1.convblock[-1]
        last.weight.zero_()
        last.bias.zero_()
        # sigmoid(-2) = 0.12 on the older frame (K = 2); softmax with +2 on the newest (K > 2)
        if self.mask_channels == 1:
            last.bias[2 * k] = PRIOR_OLDER_LOGIT
        else:
            last.bias[2 * k + k - 1] = PRIOR_NEWEST_LOGIT

    # ----------------------------------------------------------------------------------------
    def _decode(self, pyramids: list[torch.Tensor], time: torch.Tensor, prior: list[torch.Tensor] | None = None):
        """Run the decoders coarse to fine.

        pyramids: per level (B, K, c_l, h_l, w_l) at 1/2..1/16; time (B, 1, 1, 1); prior None or
        the motion-prior flows (B, 2K, h, w) at 1/16, 1/8, 1/4, 1/2 and 1 of the padded input,
        each in the pixels of its level (`_prior_pyramid`). With a prior, decoder4 gets the
        features warped by it, and decoders 3..1 get the correction (flow - prior) instead of the flow.
        Returns flows fine->coarse [(B,2K,...) at 1, 1/2, 1/4, 1/8], refined features
        [1/2, 1/4, 1/8], the mask logits and the residual, all at the (padded) network size.
        """
        k = self.context_frames
        f4 = pyramids[3]
        b, _, _, h4, w4 = f4.shape
        # the prior's shift at the input of decoders 4, 3, 2, 1 (levels 1/16 .. 1/2)
        shifts = [prior_shift(prior[index]) for index in range(4)] if self.prior_shift_input else [None] * 4
        if prior is None:
            out = self.decoder4(torch.cat([f4.flatten(1, 2), time.expand(b, 1, h4, w4)], dim=1))
            flow = out[:, : 2 * k]
        else:
            aligned = warp_each(f4, prior[0]).flatten(1, 2)
            extra = [] if shifts[0] is None else [shifts[0]]
            out = self.decoder4(torch.cat([aligned, time.expand(b, 1, h4, w4)] + extra, dim=1))
            flow = out[:, : 2 * k] + prior[1]
        flows = [flow]
        refined = [out[:, 2 * k :]]
        for level, decoder in ((2, self.decoder3), (1, self.decoder2), (0, self.decoder1)):
            warped = warp_each(pyramids[level], flow)
            motion = flow if prior is None else flow - prior[3 - level]  # the correction, not the motion
            extra = [] if shifts[3 - level] is None else [shifts[3 - level]]
            out = decoder(torch.cat([refined[-1], warped.flatten(1, 2), motion] + extra, dim=1))
            flow = out[:, : 2 * k] + 2.0 * upsample2x(flow)
            if prior is not None:  # add the prior's detail at this level: correction + prior, exactly
                index = 4 - level
                flow = flow + prior[index] - 2.0 * upsample2x(prior[index - 1])
            flows.append(flow)
            if level > 0:
                refined.append(out[:, 2 * k :])
        mask_logits = out[:, 2 * k : 2 * k + self.mask_channels]
        residual = out[:, 2 * k + self.mask_channels : 2 * k + self.mask_channels + 3]
        if self.prior_shift_gate:  # decoder1's last channel: how much of the fixed-point step to take
            flows[-1] = flows[-1] + out[:, -1:] * prior_shift(prior[4])
        return flows[::-1], refined[::-1], mask_logits, residual

    def _blend_weights(self, mask_logits: torch.Tensor) -> torch.Tensor:
        """(B, 1 or K, H, W) logits -> (B, K, H, W) weights summing to 1 over K."""
        if self.mask_channels == 1:
            m = torch.sigmoid(mask_logits)
            return torch.cat([m, 1.0 - m], dim=1)
        return torch.softmax(mask_logits, dim=1)

    def forward(self, frames: torch.Tensor, t, target: torch.Tensor | None = None, scale_factor: float = 1.0,
                prior_flow: torch.Tensor | None = None):
        """Full forward pass with everything losses and pictures need.

        Args:
            frames: (B, K, 3, H, W) context frames in [0, 1], oldest first.
            t: float or (B,) target time (0 < t < 1 interpolates, t = 1 + k is k frames ahead).
            target: optional (B, 3, H, W) true target; its encoder features are returned.
            scale_factor: run the network on frames resized by this factor (< 1 for large
                inputs); flows, mask and residual are resized back.
            prior_flow: optional (B, 2K, H, W) motion-prior flows (target -> each frame, pixels);
                with a motion prior and None they are computed here (`constant_velocity_prior`
                with the model's method; "lucas_kanade" on the frames' device, in float32).

        Returns:
            dict with `prediction` (B,3,H,W), `merged` (B,3,H,W), `flows` [fine->coarse
            (B,2K,h,w) at 1, 1/2, 1/4, 1/8 of the network size; channels 2k:2k+2 point from the
            target to frame k], `mask` (B,K,H,W), `residual` (B,3,H,W), `warped` (B,K,3,H,W),
            `refined_features` [1/2, 1/4, 1/8], `target_features` (if target given), `mean`,
            and `prior_flow` (B, 2K, H, W) when the model has a motion prior.
            Full-size maps are cropped to H x W; coarser levels cover the padded network input.
        """
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must be (B, K, 3, H, W), got {tuple(frames.shape)}")
        b, k, _, height, width = frames.shape
        if k != self.context_frames:
            raise ValueError(f"model was built for {self.context_frames} context frames, got {k}")
        time = _as_time_tensor(t, b, frames.device, frames.dtype)

        mean = frames.mean(dim=(1, 2, 3, 4)).view(b, 1, 1, 1)
        centred = frames - mean.unsqueeze(1)
        net_input = centred.flatten(0, 1)
        if target is not None:
            net_input = torch.cat([net_input, target - mean], dim=0)

        net_input, (net_height, net_width) = network_input(net_input, scale_factor)

        coarse_prior = None
        if self.motion_prior != "none":
            if prior_flow is None:
                with torch.autocast(frames.device.type, enabled=False):  # float32 flow whatever the precision
                    prior_flow = constant_velocity_prior(frames.float(), time.view(b).float(), self.motion_prior)
            coarse_prior = prior_pyramid(prior_flow.to(frames.dtype), (net_height, net_width), (height, width))

        features = self.encoder(net_input)
        pyramids = [f[: b * k].unflatten(0, (b, k)) for f in features]
        flows, refined, mask_logits, residual = self._decode(pyramids, time, coarse_prior)

        full_flow, mask, residual = to_input_size(
            flows[0], self._blend_weights(mask_logits), residual, (net_height, net_width), (height, width)
        )
        flows = [full_flow] + flows[1:]

        warped = warp_each(centred, full_flow)
        merged = (mask.unsqueeze(2) * warped).sum(dim=1) + mean
        prediction = torch.clamp(merged + residual, 0.0, 1.0)
        output = dict(prediction=prediction, merged=merged, flows=flows, mask=mask, residual=residual,
                      warped=warped + mean.unsqueeze(1), refined_features=refined, mean=mean)
        if target is not None:
            output["target_features"] = [f[b * k :] for f in features[:3]]
        if prior_flow is not None:
            output["prior_flow"] = prior_flow
        return output

    @torch.inference_mode()
    def predict(self, frames: torch.Tensor, t, scale_factor: float = 1.0, precision: str = "fp32",
                prior_flow: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the frame at time `t`: (B, K, 3, H, W) in [0, 1] -> (B, 3, H, W) float32 in [0, 1].

        Any H, W (replicate-padded to a multiple of 16 inside, cropped back). `precision`: "fp32",
        "bf16" or "fp16" (autocast, `ifrvp_core.precision`; the motion prior stays float32).
        `prior_flow`: optional (B, 2K, H, W) motion prior, as in `forward`.
        """
        if prior_flow is None and self.motion_prior == "dis":
            # OpenCV DIS, here rather than in forward: float32 from the frames whatever the
            # precision, and outside a torch.compile'd forward (DIS is not a torch op). The
            # lucas_kanade prior is a torch op: forward computes it on the device.
            prior_flow = constant_velocity_prior(frames, t, self.motion_prior)
        with autocast_for(precision, frames.device):
            prediction = self.forward(frames, t, scale_factor=scale_factor, prior_flow=prior_flow)["prediction"]
        return prediction.float()
