"""Notebook 05 (evaluation): the run of `evaluate_model`, its headline tables, curves and samples."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ifrvp_core.evaluate import (
    evaluate_model,
    frame_steps,
    published_rows,
    results_protocol,
    running_step_name,
    running_steps,
    save_results,
    step_name,
    step_number,
)
from ifrvp_core.visualisation import error_map, to_numpy_image
from ifrvp_core.workbook.display import step_column
from ifrvp_core.workbook.profiles import write_json
from ifrvp_core.results import beats_baseline
from ifrvp_core.workbook.verdicts import BASELINE_LABELS


def metric_curves_figure(results, metrics=("psnr", "ssim", "ms_ssim")):
    """Per-step curves of each method, one panel per metric: frame t+k (solid) and the running
    mean over t+1..t+k (dashed, the form DMVFN's scripts print)."""
    metrics = [m for m in metrics if any(v.get(m) is not None for steps in results.values() for v in steps.values())]
    fig = Figure(figsize=(4.2 * max(len(metrics), 1), 3.2), constrained_layout=True)
    axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for index, (method, steps) in enumerate(results.items()):
            colour = f"C{index % 10}"
            for names, style, label in ((frame_steps(steps), "o-", f"{method}, frame t+k"),
                                        (running_steps(steps), "s--", f"{method}, mean t+1..t+k")):
                values = [steps[s].get(metric) for s in names]
                if names:
                    ax.plot([step_number(s) for s in names], [np.nan if v is None else v for v in values], style,
                            color=colour, markersize=4, label=label)
        ax.set_xlabel("future step k")
        ax.set_xticks(range(1, 1 + max(len(frame_steps(steps)) for steps in results.values())))
        ax.set_title(metric.upper().replace("_", "-"), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def best_worst_figure(results, dataset, model, method: str = "model", metric: str = "psnr", count: int = 3):
    """The `count` best and worst t+1 samples of `method`: newest context | prediction | truth | |error|."""
    best, worst = results.best_worst(method, metric, "t+1", count)
    rows = [("best", item) for item in best] + [("worst", item) for item in worst]
    fig = Figure(figsize=(10, 2.3 * len(rows)), constrained_layout=True)
    axes = fig.subplots(len(rows), 4, squeeze=False)
    for row, (kind, (index, name, score)) in enumerate(rows):
        sample = dataset[index]
        with torch.inference_mode():
            prediction = model.predict(sample["context"].unsqueeze(0), float(sample["target_times"][0]))[0]
        images = [sample["context"][-1], prediction, sample["target"][0]]
        titles = ["newest context", f"{kind}: {name} ({score:.2f})", "truth"]
        for column, (image, title) in enumerate(zip(images, titles)):
            axes[row, column].imshow(to_numpy_image(image))
            axes[row, column].set_title(title, fontsize=8)
        axes[row, 3].imshow(error_map(prediction, sample["target"][0]), cmap="inferno", vmin=0, vmax=0.3)
        axes[row, 3].set_title("|error|", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    return fig


def results_rows(results, steps=(1, 3, 5), form: str = "frame", published: bool = True) -> list[dict]:
    """Headline rows (method x metric at k = 1, 3, 5) of one step form, for an HTML table.

    Args:
        results: `evaluate` results.
        steps: the k to show (those the results hold).
        form: "frame" (columns "psnr frame t+k": frame t+k alone) or "running" (columns
            "psnr mean t+1..t+k": running means, followed by DMVFN's published rows for the
            protocol when `published`).
    """
    if form not in ("frame", "running"):
        raise ValueError(f"form must be 'frame' or 'running', got {form!r}")
    key = step_name if form == "frame" else running_step_name
    held = {step for table in results.values() for step in table}
    columns = [key(k) for k in steps if key(k) in held]
    metrics = list(dict.fromkeys(m for table in results.values() for step in columns for m in table.get(step, {})))
    if form == "running":
        metrics = [m for m in metrics if m != "epe"]

    def row_of(label, table):
        row = {"method": label}
        for step in columns:
            for metric in metrics:
                row[step_column(metric, step)] = table.get(step, {}).get(metric, "")
        return row

    rows = [row_of(method, table) for method, table in results.items()]
    if form == "running" and published:
        rows += [row_of(reference["label"], reference["values"]) for reference in published_rows(results_protocol(results))]
    return rows


def evaluation_headline(results) -> dict:
    """headline.json of notebook 05 (read by the workbook index): t+1 of every method and verdicts."""
    t1 = {method: results[method]["t+1"] for method in results}
    meta = getattr(results, "meta", None) or {}

    def beats(baseline):
        if "model" not in t1 or baseline not in t1:
            return None
        return beats_baseline(t1["model"], t1[baseline])

    return {
        "protocol": results_protocol(results), "samples": len(results.sample_names),
        "checkpoint": meta.get("checkpoint"), "variant": meta.get("variant"), "t+1": t1,
        "unavailable": dict(results.unavailable),
        **{f"model_beats_{baseline}_t1": beats(baseline) for baseline, _ in BASELINE_LABELS},
    }


def run_evaluation(model, protocol, results_dir, *, checkpoint=None, data_root=None, steps=None, max_samples=None,
                   baselines: bool = True, bgr_like_published: bool = False, progress: bool = True, **options):
    """Notebook 05's evaluation: `evaluate_model` (the same contract as `ifrvp evaluate`), then
    `results_dir/results.json` (+ CSVs) and `results_dir/headline.json`.

    Returns:
        (results, written files {"json", "csv", "per_sample", "headline"}).
    """
    results = evaluate_model(
        model, protocol, checkpoint=None if checkpoint is None else Path(checkpoint).resolve(), baselines=baselines,
        written_by="notebook 05_evaluation", steps=steps, root=data_root, max_samples=max_samples,
        bgr_like_published=bgr_like_published, progress=progress, **options,
    )
    written = save_results(results, Path(results_dir) / "results.json")
    written["headline"] = write_json(Path(results_dir) / "headline.json", evaluation_headline(results))
    return results, written


__all__ = ["best_worst_figure", "evaluation_headline", "metric_curves_figure", "results_rows", "run_evaluation"]
