"""Notebook 02 (architecture exploration): the IFRNet family side by side and one model opened up.

`time_sweep_figure` (interpolation vs extrapolation from one context) serves notebook 04 too,
there with trained weights.
"""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from tqdm.auto import tqdm

from ifrvp_core.data.synthetic import load_scene, render_frame
from ifrvp_core.metrics import psnr
from ifrvp_core.models import build_model
from ifrvp_core.profiling import count_macs, count_parameters, median_latency_ms
from ifrvp_core.rollout import resolve_device
from ifrvp_core.visualisation import error_map, to_numpy_image


def variant_table(models, sizes, repeats: int = 3, context_frames: int = 2, progress: bool = True) -> list[dict]:
    """Parameters, MACs and median CPU/GPU latency of `model.predict` per variant and size."""
    device = resolve_device()
    rows = []
    for name in tqdm(list(models), desc="variants", disable=not progress):
        model = build_model(name, context_frames=context_frames).eval().to(device)
        row = {"model": name, "parameters (M)": count_parameters(model) / 1e6}
        for height, width in sizes:
            frames = torch.rand(1, context_frames, 3, height, width, device=device)
            row[f"GMACs {height}x{width}"] = count_macs(model, frames) / 1e9
            row[f"ms {height}x{width} ({device.type})"] = median_latency_ms(model, frames, repeats=repeats, warmup=1)
        rows.append(row)
    return rows


def pyramid_shapes(model, height: int = 128, width: int = 192) -> list[dict]:
    """Shapes at each pyramid level of one training forward pass (batch 1)."""
    frames = torch.rand(1, model.context_frames, 3, height, width)
    with torch.no_grad():
        output = model(frames, 2.0, target=torch.rand(1, 3, height, width))
    rows = []
    for level, flow in enumerate(output["flows"]):
        row = {"level": f"1/{2 ** level}", "flows (B, 2K, h, w)": tuple(flow.shape)}
        if 1 <= level <= len(output["refined_features"]):
            row["refined features"] = tuple(output["refined_features"][level - 1].shape)
            row["target encoder features"] = tuple(output["target_features"][level - 1].shape)
        rows.append(row)
    rows.append({"level": "output", "flows (B, 2K, h, w)": f"mask {tuple(output['mask'].shape)}, residual {tuple(output['residual'].shape)}"})
    return rows


def effective_receptive_field(model, height: int = 128, width: int = 192, seed: int = 0) -> tuple[np.ndarray, dict]:
    """|d prediction(centre pixel) / d input| summed over frames and channels: (H, W) map and radii.

    The radii are those of the smallest centred squares holding 50% / 90% / 99% of the gradient
    mass: how far a predicted pixel actually looks (the flow search range of the model).
    """
    generator = torch.Generator().manual_seed(seed)
    frames = torch.rand(1, model.context_frames, 3, height, width, generator=generator, requires_grad=True)
    was_training = model.training
    model.eval()
    output = model(frames, 2.0)["prediction"]
    output[0, :, height // 2, width // 2].sum().backward()
    model.train(was_training)
    gradient = frames.grad.abs().sum(dim=(0, 1, 2)).numpy()
    total = gradient.sum()
    radii = {}
    for share in (0.5, 0.9, 0.99):
        radius = 0
        while radius < max(height, width):
            y0, y1 = max(height // 2 - radius, 0), height // 2 + radius + 1
            x0, x1 = max(width // 2 - radius, 0), width // 2 + radius + 1
            if gradient[y0:y1, x0:x1].sum() >= share * total:
                break
            radius += 1
        radii[f"{int(share * 100)}%"] = radius
    return gradient, radii


def receptive_field_figure(gradient: np.ndarray, radii: dict, title: str):
    height, width = gradient.shape
    fig = Figure(figsize=(6, 6 * height / width + 0.5), constrained_layout=True)
    ax = fig.subplots()
    ax.imshow(np.log10(gradient + gradient.max() * 1e-6), cmap="magma")
    for (label, radius), colour in zip(radii.items(), ("white", "cyan", "lime")):
        ax.add_patch(Rectangle((width // 2 - radius, height // 2 - radius), 2 * radius + 1, 2 * radius + 1, fill=False,
                               edgecolor=colour, label=f"{label} of gradient within +-{radius} px"))
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    return fig


def synthetic_truth_at(dataset, index: int, times) -> list[np.ndarray] | None:
    """Ground truth frames of a synthetic sample at any (fractional) target times, or None."""
    window = dataset.windows[index]
    if getattr(window, "clip_dir", None) is None or not window.frame_indices:
        return None
    scene = load_scene(window.clip_dir)
    newest = window.frame_indices[dataset.context_frames - 1]  # the context frame at t = 1
    out = []
    for t in times:
        clip_time = newest + (t - 1.0)
        if clip_time > scene["num_frames"] - 1:
            out.append(None)
        else:
            out.append(render_frame(scene, clip_time))
    return out


def time_sweep_figure(model, dataset, index: int, times=(0.5, 1.5, 2.0, 3.0)):
    """Predictions at several target times t from one context: interpolation (t<1) vs extrapolation (t>1).

    Rows: prediction, ground truth (synthetic data renders any t), |error|.
    """
    sample = dataset[index]
    context = sample["context"].unsqueeze(0)
    truths = synthetic_truth_at(dataset, index, times) or [None] * len(times)
    fig = Figure(figsize=(2.6 * (len(times) + 2), 2.2 * 3), constrained_layout=True)
    axes = fig.subplots(3, len(times) + 2, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    k = context.shape[1]
    for i in range(2):
        axes[0, i].imshow(to_numpy_image(context[0, k - 2 + i]))
        axes[0, i].set_title(f"context t={i}", fontsize=9)
    for column, (t, truth) in enumerate(zip(times, truths), start=2):
        prediction = model.predict(context, float(t))[0]
        axes[0, column].imshow(to_numpy_image(prediction))
        kind = "interpolate" if t < 1 else "extrapolate"
        if truth is not None:
            truth_tensor = torch.from_numpy(truth).permute(2, 0, 1).float() / 255.0
            score = float(psnr(prediction.unsqueeze(0).clamp(0, 1), truth_tensor.unsqueeze(0))[0])
            axes[0, column].set_title(f"t={t:g} ({kind}) {score:.1f} dB", fontsize=9)
            axes[1, column].imshow(truth)
            axes[1, column].set_title(f"truth t={t:g}", fontsize=9)
            axes[2, column].imshow(error_map(prediction, truth_tensor), cmap="inferno", vmin=0, vmax=0.3)
            axes[2, column].set_title("|error|", fontsize=9)
        else:
            axes[0, column].set_title(f"t={t:g} ({kind})", fontsize=9)
    return fig


__all__ = [
    "effective_receptive_field", "pyramid_shapes", "receptive_field_figure", "synthetic_truth_at", "time_sweep_figure",
    "variant_table",
]
