"""Notebook 04 (flows and warps of a trained model): rollout animations, the flow at every level, the explorer."""
from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets
import torch
from IPython.display import display
from matplotlib.figure import Figure

from ifrvp_core.evaluate import model_step_fn, rollout
from ifrvp_core.visualisation import flow_to_color, side_by_side, to_numpy_image, write_animation
from ifrvp_core.workbook.samples import forward_sample

EXPLORER_LAYERS = ["prediction vs truth", "flow level 0 (full)", "flow level 1 (1/2)", "flow level 2 (1/4)",
                   "flow level 3 (1/8)", "warped context", "blend mask", "residual"]


def rollout_animation(model, dataset, index: int, steps: int, path) -> tuple[Path, torch.Tensor]:
    """Recursive t+1..t+steps rollout of one sample written as a GIF of prediction | truth | |error|.

    Returns (GIF path, predictions (steps, 3, H, W)).
    """
    sample = dataset[index]
    context = sample["context"].unsqueeze(0)
    steps = min(steps, sample["target"].shape[0])
    with torch.inference_mode():
        predictions = rollout(model_step_fn(model), context, steps)[0]
    frames = []
    for i in range(context.shape[1]):
        frame = context[0, i]
        frames.append(side_by_side(frame, frame, torch.zeros_like(frame), labels=[f"context {i - context.shape[1] + 1}", "", ""]))
    for step in range(steps):
        truth = sample["target"][step]
        error = ((predictions[step] - truth).abs() * 4).clamp(0, 1)
        frames.append(side_by_side(predictions[step], truth, error, labels=[f"prediction t+{step + 1}", "truth", "|error| x4"]))
    return write_animation(frames, path, fps=2), predictions


def level_grid_figure(model, dataset, indices, levels=(0, 1, 2, 3)):
    """The static stand-in for the interactive explorer: samples x (prediction, flow per level, mask)."""
    columns = 2 + len(levels)
    fig = Figure(figsize=(2.5 * columns, 2.1 * len(indices)), constrained_layout=True)
    axes = fig.subplots(len(indices), columns, squeeze=False)
    for row, index in enumerate(indices):
        output = forward_sample(model, dataset[index])
        axes[row, 0].imshow(to_numpy_image(output["prediction"][0]))
        axes[row, 0].set_title(f"sample {index}: prediction", fontsize=8)
        for column, level in enumerate(levels, start=1):
            flow = output["flows"][level][0][-2:]  # flow to the newest context frame
            axes[row, column].imshow(flow_to_color(flow))
            axes[row, column].set_title(f"flow->newest, level 1/{2 ** level}", fontsize=8)
        axes[row, -1].imshow(output["mask"][0][-1].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[row, -1].set_title("mask of newest frame", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    return fig


def explorer_figure(model, sample: dict, layer: str):
    """One view of the explorer: `layer` (one of `EXPLORER_LAYERS`) of the model's output for `sample`."""
    output = forward_sample(model, sample)
    k = model.context_frames
    fig = Figure(figsize=(3 * k + 3, 2.6), constrained_layout=True)
    axes = fig.subplots(1, k + 1, squeeze=False)[0]
    for i, ax in enumerate(axes):
        ax.axis("off")
        if layer.startswith("prediction"):
            images = [output["prediction"][0], sample["target"][0]]
            if i < 2:
                ax.imshow(to_numpy_image(images[i]))
                ax.set_title(["prediction", "truth"][i], fontsize=9)
        elif layer.startswith("flow") and i < k:
            level = int(layer.split()[2])
            ax.imshow(flow_to_color(output["flows"][level][0][2 * i : 2 * i + 2]))
            ax.set_title(f"flow -> context {i}", fontsize=9)
        elif layer == "warped context" and i < k:
            ax.imshow(to_numpy_image(output["warped"][0][i]))
            ax.set_title(f"context {i} warped", fontsize=9)
        elif layer == "blend mask" and i < k:
            ax.imshow(output["mask"][0][i].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"mask {i}", fontsize=9)
        elif layer == "residual" and i == 0:
            ax.imshow(to_numpy_image((output["residual"][0] * 4 + 0.5).clamp(0, 1)))
            ax.set_title("residual x4 + 0.5", fontsize=9)
    return fig


def flow_explorer(model, dataset):
    """An ipywidgets explorer: sample slider x what to show (flow per level, warped frames, mask, residual)."""
    sample_slider = widgets.IntSlider(0, 0, len(dataset) - 1, description="sample")
    layer_choice = widgets.Dropdown(options=EXPLORER_LAYERS, description="show")
    out = widgets.Output()

    def draw(*_):
        fig = explorer_figure(model, dataset[sample_slider.value], layer_choice.value)
        out.clear_output(wait=True)
        with out:
            display(fig)

    sample_slider.observe(draw, "value")
    layer_choice.observe(draw, "value")
    draw()
    return widgets.VBox([widgets.HBox([sample_slider, layer_choice]), out])


__all__ = ["EXPLORER_LAYERS", "explorer_figure", "flow_explorer", "level_grid_figure", "rollout_animation"]
