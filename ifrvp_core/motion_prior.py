"""Classical optical flow for extrapolation: the constant-velocity motion prior and on-the-fly teacher flow.

A network that must discover motion from scratch in a few thousand CPU steps loses to two lines of
OpenCV, and on small real crops it falls into the easy optimum of copying the last frame. The
motion prior gives the model the constant-velocity flow up front (OpenCV DIS between the two
newest context frames), so the decoders learn the *correction* (occlusions, acceleration,
disocclusion fill) and start at the classical baseline's quality instead of below it.

Time convention (docs/architecture.md): context frame k of K sits at ``tau_k = k - (K - 2)``, the
two newest at 0 and 1, the target at ``t``. With ``B`` the DIS flow from the newest frame to the
one before it (defined on the newest frame's pixels, ``newest(p) ~ previous(p + B(p))``), the
velocity is ``-B`` per frame and the constant-velocity flow from the target to frame k is

    prior_k(p) = (t - tau_k) * B(p)        (t = 2: B to the newest frame, 2B to the one before)

``B`` is sampled at the target pixel rather than at the point it came from: exact for uniform
motion, one frame of displacement off at motion boundaries (the network corrects that).

The method (`MOTION_PRIORS`): "dis" (OpenCV DIS, CPU, uint8, one pair at a time) or
"lucas_kanade" (`ifrvp_core.torch_flow.lucas_kanade_flow`: pure torch, batched, on the frames'
device, so a GPU model computes its prior without leaving the device).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ifrvp_core.quantise import to_uint8
from ifrvp_core.torch_flow import lucas_kanade_flow
from ifrvp_core.warp import backward_warp

MOTION_PRIORS = ("none", "dis", "lucas_kanade")
# The methods that compute a flow (`prior_flow_batch`): every prior but "none".
FLOW_METHODS = MOTION_PRIORS[1:]
# The blend a motion-prior model starts from (its mask logits before training): K = 2 keeps the
# published single sigmoid logit on the older frame, sigmoid(-2) = 0.12; K > 2 puts +2 on the
# newest frame's softmax logit. `prior_prediction` uses the same numbers.
PRIOR_OLDER_LOGIT = -2.0
PRIOR_NEWEST_LOGIT = 2.0


def dis_flow_uint8(source: np.ndarray, destination: np.ndarray, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
                   dis=None) -> np.ndarray:
    """DIS flow from `source` to `destination`, (H, W, 3) uint8 RGB each -> (H, W, 2) float32.

    ``source(p) ~ destination(p + flow(p))``: the backward-warping direction, channel 0 is x; the
    images are turned gray with OpenCV's RGB weights. `dis`: a DIS object to reuse (else a new one).
    """
    dis = dis if dis is not None else cv2.DISOpticalFlow_create(preset)
    gray = [cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY) for image in (source, destination)]
    return dis.calc(gray[0], gray[1], None)


def dis_flow_batch(source: torch.Tensor, destination: torch.Tensor, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> torch.Tensor:
    """DIS flow from each `source` to its `destination`: (N, 3, H, W) x2 in [0, 1] -> (N, 2, H, W) float32.

    The frames are quantised to uint8 and passed to `dis_flow_uint8`. A fresh DIS object per call
    keeps it safe in data-loader workers and threads.
    """
    if source.shape != destination.shape or source.dim() != 4 or source.shape[1] != 3:
        raise ValueError(f"dis_flow_batch expects two (N, 3, H, W) tensors of one shape, got {tuple(source.shape)} and {tuple(destination.shape)}")
    dis = cv2.DISOpticalFlow_create(preset)
    flows = [dis_flow_uint8(a, b, dis=dis) for a, b in zip(to_uint8(source), to_uint8(destination))]
    return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous()


def prior_flow_batch(source: torch.Tensor, destination: torch.Tensor, method: str = "dis") -> torch.Tensor:
    """The prior's flow from each `source` to its `destination`: (N, 3, H, W) x2 in [0, 1] -> (N, 2, H, W).

    "dis": `dis_flow_batch` (CPU, float32); "lucas_kanade": `lucas_kanade_flow` on the frames'
    device. Both ``source(p) ~ destination(p + flow(p))``, channel 0 is x, in pixels.
    """
    if method == "dis":
        return dis_flow_batch(source, destination)
    if method == "lucas_kanade":
        return lucas_kanade_flow(source, destination)
    raise ValueError(f"motion prior method must be one of {FLOW_METHODS}, got {method!r}")


def context_times(context_frames: int) -> list[float]:
    """Times of the K context frames, oldest first: the two newest at 0 and 1."""
    return [float(k - (context_frames - 2)) for k in range(context_frames)]


@torch.no_grad()
def constant_velocity_prior(frames: torch.Tensor, t, method: str = "dis") -> torch.Tensor:
    """Constant-velocity flows from the target at time `t` to every context frame.

    Args:
        frames: (B, K, 3, H, W) context frames in [0, 1], oldest first.
        t: float or (B,) target times.
        method: the flow from the newest frame to the one before, "dis" or "lucas_kanade"
            (`prior_flow_batch`).

    Returns:
        (B, 2K, H, W) float tensor on `frames`' device; channels 2k:2k+2 point to frame k.
    """
    b, k = frames.shape[:2]
    backward = prior_flow_batch(frames[:, -1], frames[:, -2], method).to(frames.device, frames.dtype)  # (B, 2, H, W)
    time = torch.as_tensor(t, device=frames.device, dtype=frames.dtype).reshape(-1).expand(b).view(b, 1, 1, 1)
    return torch.cat([(time - tau) * backward for tau in context_times(k)], dim=1)


def dis_teacher_flow(context: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Teacher flow for distillation from the real target: DIS from `target` to every context frame.

    context (K, 3, H, W), target (3, H, W) in [0, 1] -> (2K, H, W), the layout of `teacher_flow`.
    """
    k = context.shape[0]
    flows = dis_flow_batch(target.unsqueeze(0).expand(k, -1, -1, -1), context)
    return flows.reshape(2 * k, *flows.shape[-2:])


def prior_blend_weights(context_frames: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """(K,) weights of the context frames in the prior's blend, oldest first (they sum to 1)."""
    if context_frames == 2:
        older = torch.sigmoid(torch.tensor(PRIOR_OLDER_LOGIT, dtype=dtype, device=device))
        return torch.stack([older, 1.0 - older])
    logits = torch.zeros(context_frames, dtype=dtype, device=device)
    logits[-1] = PRIOR_NEWEST_LOGIT
    return torch.softmax(logits, dim=0)


@torch.no_grad()
def prior_prediction(frames: torch.Tensor, t, prior_flow: torch.Tensor | None = None, method: str = "dis") -> torch.Tensor:
    """What a motion-prior model predicts before training (the `prior_only` baseline).

    Every context frame is warped to time `t` along the constant-velocity prior and the warps are
    blended with `prior_blend_weights`, as the untrained model does (its flow, mask and residual
    outputs start at zero, so its other weights do not matter): the same numbers up to float
    rounding, without running the network.

    frames (B, K, 3, H, W) in [0, 1]; t float or (B,); prior_flow optional (B, 2K, H, W), else
    `constant_velocity_prior(frames, t, method)` -> (B, 3, H, W) in [0, 1].
    """
    b, k, c, h, w = frames.shape
    if prior_flow is None:
        prior_flow = constant_velocity_prior(frames, t, method)
    mean = frames.mean(dim=(1, 2, 3, 4)).view(b, 1, 1, 1)
    centred = (frames - mean.unsqueeze(1)).reshape(b * k, c, h, w)
    warped = backward_warp(centred, prior_flow.to(frames.dtype).reshape(b * k, 2, h, w)).reshape(b, k, c, h, w)
    weights = prior_blend_weights(k, frames.dtype, frames.device).view(1, k, 1, 1, 1)
    return torch.clamp((weights * warped).sum(dim=1) + mean, 0.0, 1.0)
