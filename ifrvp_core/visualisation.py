"""Pictures of predictions, flows, warps and masks for notebooks and reports.

Flows are coloured with torchvision's Middlebury-style colour wheel (`flow_to_image`): hue is
the direction, saturation the magnitude. `max_magnitude` puts several flows on one scale.
Functions accept torch tensors or numpy arrays; images are (3, H, W) floats in [0, 1] or
(H, W, 3) uint8. Figures use matplotlib's object API (safe headless with the Agg backend).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision.utils import flow_to_image

from ifrvp_core.atomic import write_file_atomic
from ifrvp_core.quantise import to_uint8


def _tensor(x) -> torch.Tensor:
    return x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def to_numpy_image(image) -> np.ndarray:
    """(3, H, W) float in [0, 1] (tensor or array) or (H, W, 3) uint8 -> (H, W, 3) uint8."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3:
        return image
    array = _tensor(image).float()
    if array.dim() == 2:  # (H, W) gray
        array = array.unsqueeze(0)
    elif array.shape[0] not in (1, 3):  # (H, W, C) floats
        array = array.permute(2, 0, 1)
    if array.shape[0] == 1:
        array = array.repeat(3, 1, 1)
    return to_uint8(array)


def flow_to_color(flow, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-code flow: (2, H, W) -> (H, W, 3) uint8, or (B, 2, H, W) -> (B, H, W, 3).

    Without `max_magnitude` each flow is normalised by its own largest vector (torchvision's
    behaviour); with it, every flow shares that scale, so colours compare across images.
    """
    flow = _tensor(flow).float()
    single = flow.dim() == 3
    if single:
        flow = flow.unsqueeze(0)
    if max_magnitude is not None:
        # flow_to_image divides by the max norm; a far-away sentinel pixel pins that norm.
        padded = torch.cat([flow, torch.zeros_like(flow[..., :1])], dim=-1)
        padded[:, 0, 0, -1] = max(float(max_magnitude), 1e-6)
        norms = flow.norm(dim=1).flatten(1).max(1).values
        if (norms > max_magnitude + 1e-6).any():
            padded[:, :, :, :-1] = flow * (max_magnitude / norms.clamp_min(max_magnitude)).view(-1, 1, 1, 1)
        colours = flow_to_image(padded)[..., :-1]
    else:
        colours = flow_to_image(flow)
    colours = colours.permute(0, 2, 3, 1).numpy().astype(np.uint8)
    return colours[0] if single else colours


def color_wheel_legend(size: int = 128) -> np.ndarray:
    """The colour wheel as an image (H, W, 3) uint8: a flow pointing from the centre outwards."""
    coords = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    xx, yy = np.meshgrid(coords, coords)
    flow = np.stack([xx, yy])
    colours = flow_to_color(flow, max_magnitude=1.0)
    colours[np.hypot(xx, yy) > 1.0] = 255
    return colours


def draw_flow_arrows(ax, flow, step: int = 16, image=None, color: str = "yellow") -> None:
    """Quiver plot of (2, H, W) flow every `step` pixels, 1:1 in pixels (y down)."""
    flow = _tensor(flow).float().numpy()
    height, width = flow.shape[-2:]
    if image is not None:
        ax.imshow(to_numpy_image(image))
    ys, xs = np.mgrid[step // 2 : height : step, step // 2 : width : step]
    ax.quiver(xs, ys, flow[0, ys, xs], flow[1, ys, xs], color=color, angles="xy", scale_units="xy", scale=1.0, width=0.004)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)


def error_map(prediction, target) -> np.ndarray:
    """Mean absolute error over channels: (3, H, W) pair -> (H, W) float."""
    return (_tensor(prediction).float() - _tensor(target).float()).abs().mean(0).numpy()


def show_error(ax, error: np.ndarray, vmax: float | None = None) -> None:
    handle = ax.imshow(error, cmap="inferno", vmin=0.0, vmax=vmax or max(float(error.max()), 1e-6))
    ax.figure.colorbar(handle, ax=ax, fraction=0.046, pad=0.02)


def _axis_off(ax, title: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def prediction_figure(sample: dict, output: dict, index: int = 0):
    """Everything about one prediction in a grid.

    sample: batched dict with `context` (B,K,3,H,W) and `target` (B,n,3,H,W) or (B,3,H,W);
    output: the model's output dict (`prediction`, `flows`, `mask`, `residual`, `warped`).
    Rows: context frames, prediction/truth/error, flows as colour, flows as arrows, warped
    frames and blend masks, residual.
    """
    context = sample["context"][index]
    target = sample["target"][index]
    target = target[0] if target.dim() == 4 else target
    k = context.shape[0]
    prediction = output["prediction"][index]
    flow = output["flows"][0][index]
    columns = max(k, 3)
    fig = Figure(figsize=(3.2 * columns, 2.4 * 6), constrained_layout=True)
    axes = fig.subplots(6, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(k):
        axes[0, i].imshow(to_numpy_image(context[i]))
        _axis_off(axes[0, i], f"context {i - k + 2:+d}" if k > 2 else f"context t={i}")
    axes[1, 0].imshow(to_numpy_image(prediction))
    _axis_off(axes[1, 0], "prediction")
    axes[1, 1].imshow(to_numpy_image(target))
    _axis_off(axes[1, 1], "ground truth")
    show_error(axes[1, 2], error_map(prediction, target))
    _axis_off(axes[1, 2], "|error|")
    scale = float(flow.view(k, 2, *flow.shape[-2:]).norm(dim=1).max())
    for i in range(k):
        flow_i = flow[2 * i : 2 * i + 2]
        axes[2, i].imshow(flow_to_color(flow_i, max_magnitude=scale))
        _axis_off(axes[2, i], f"flow target->context {i} (max {scale:.1f}px)")
        draw_flow_arrows(axes[3, i], flow_i, step=max(8, flow.shape[-1] // 16), image=context[i])
        _axis_off(axes[3, i], f"flow arrows {i}")
        axes[4, i].imshow(to_numpy_image(output["warped"][index][i]))
        _axis_off(axes[4, i], f"context {i} warped")
        axes[5, i].imshow(_tensor(output["mask"][index][i]).numpy(), cmap="gray", vmin=0, vmax=1)
        _axis_off(axes[5, i], f"blend mask {i}")
    residual = _tensor(output["residual"][index]).float()
    axes[5, k if k < columns else 0].imshow(to_numpy_image((residual * 4 + 0.5).clamp(0, 1)))
    _axis_off(axes[5, k if k < columns else 0], "residual (x4 + 0.5)")
    return fig


def pyramid_flow_figure(output: dict, index: int = 0):
    """Each decoder level's flows (fine to coarse) per context frame, plus the blend masks."""
    flows = output["flows"]
    k = flows[0].shape[1] // 2
    fig = Figure(figsize=(3.0 * len(flows), 2.4 * (k + 1)), constrained_layout=True)
    axes = fig.subplots(k + 1, len(flows), squeeze=False)
    for level, flow in enumerate(flows):
        flow = flow[index]
        for i in range(k):
            axes[i, level].imshow(flow_to_color(flow[2 * i : 2 * i + 2]))
            _axis_off(axes[i, level], f"1/{2 ** level} flow->{i} ({flow.shape[-2]}x{flow.shape[-1]})")
    for ax in axes[k]:
        ax.axis("off")
    for i in range(min(k, len(flows))):
        axes[k, i].imshow(_tensor(output["mask"][index][i]).numpy(), cmap="gray", vmin=0, vmax=1)
        _axis_off(axes[k, i], f"mask {i}")
    return fig


def rollout_strip(context, predictions, truth=None):
    """Rows prediction / truth / error, columns t+1..t+n; the context frames lead the first row.

    context (K,3,H,W), predictions (n,3,H,W), truth (n,3,H,W) or None.
    """
    k, n = context.shape[0], predictions.shape[0]
    rows = 3 if truth is not None else 1
    fig = Figure(figsize=(2.6 * (k + n), 2.2 * rows), constrained_layout=True)
    axes = fig.subplots(rows, k + n, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(k):
        axes[0, i].imshow(to_numpy_image(context[i]))
        _axis_off(axes[0, i], f"context {i - k + 1}")
    for step in range(n):
        axes[0, k + step].imshow(to_numpy_image(predictions[step]))
        _axis_off(axes[0, k + step], f"prediction t+{step + 1}")
        if truth is not None:
            axes[1, k + step].imshow(to_numpy_image(truth[step]))
            _axis_off(axes[1, k + step], f"truth t+{step + 1}")
            axes[2, k + step].imshow(error_map(predictions[step], truth[step]), cmap="inferno", vmin=0, vmax=0.3)
            _axis_off(axes[2, k + step], f"|error| t+{step + 1}")
    return fig


def side_by_side(*images, labels=None, separator: int = 4) -> np.ndarray:
    """Concatenate images horizontally with white separators and optional labels: (H, W_total, 3)."""
    arrays = [to_numpy_image(image) for image in images]
    height = max(a.shape[0] for a in arrays)
    parts = []
    for i, array in enumerate(arrays):
        if array.shape[0] != height:
            array = np.pad(array, ((0, height - array.shape[0]), (0, 0), (0, 0)))
        if labels:
            array = array.copy()
            cv2.putText(array, str(labels[i]), (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        parts.append(array)
        if i < len(arrays) - 1:
            parts.append(np.full((height, separator, 3), 255, np.uint8))
    return np.concatenate(parts, axis=1)


def write_animation(frames, path, fps: float = 4) -> Path:
    """Write frames ((H,W,3) uint8 or (3,H,W) float) as a GIF or MP4 (by suffix), atomically."""
    arrays = [to_numpy_image(frame) for frame in frames]
    suffix = Path(path).suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"animation must be .gif or .mp4, got {path}")

    def encode(tmp_path: Path) -> None:
        if suffix == ".gif":
            imageio.mimsave(tmp_path, arrays, duration=1000.0 / fps, loop=0)
            return
        # H.264 in yuv420p needs even sides
        padded = [np.pad(a, ((0, a.shape[0] % 2), (0, a.shape[1] % 2), (0, 0)), mode="edge") for a in arrays]
        writer = imageio.get_writer(tmp_path, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=1)
        for array in padded:
            writer.append_data(array)
        writer.close()

    return write_file_atomic(path, encode)
