"""Evaluation protocols, baselines, recursive rollouts and the evaluation loop.

A *step function* maps context frames (B, K, 3, H, W) in [0, 1], oldest first, to the next frame
(B, 3, H, W). Models (`model_step_fn`) and the baselines every table includes (`copy_last`,
`dis_extrapolation`) are step functions; `rollout` applies one recursively, each prediction
becoming the newest context frame, which is how video prediction papers (DMVFN, section 4)
produce t+2 ... t+5. A step function may also have a ``flows(context) -> (B, 2K, H, W)`` method
(flows from the predicted frame to each of its K context frames, pixels) and a ``context_frames``
attribute (how many of the newest frames it uses); with ground-truth flow (the synthetic set)
`evaluate` then reports the t+1 flow EPE.

Results (`evaluate`) are a dict ``{method: {step: {metric: value or None}}}`` (None: metric
unavailable, reason in ``results.unavailable``) with two forms of every step (`STEP_FORMS`):

- ``"t+k"``: the score of frame t+k alone, mean over samples;
- ``"t+1..t+k"``: the running mean over the predicted frames t+1..t+k, which is what DMVFN's
  ``scripts/test.py`` prints for step k and what papers quote as "t+3", "t+5" (`running_means`).

The results also carry ``results.meta`` (what was evaluated and how, `RESULTS_META_KEYS`) and
per-sample scores of both forms for best/worst-sample reports (``results.per_sample``,
``results.best_worst(...)``). The method keys of the contract are ``model``, ``copy_last`` and
``dis_extrapolation`` (`standard_methods`, `evaluate_model`); `save_results` writes
``{"meta": {...}, method: {step: {metric: value}}}``, whoever calls it.

    >>> from ifrvp_core.evaluate import evaluate_model, format_table, save_results
    >>> results = evaluate_model(model, "cityscapes", root="data/cityscapes", checkpoint="best.pt")
    >>> print(format_table(results)); save_results(results, "reports/eval.json")
"""
from __future__ import annotations

import csv
import io
import json
import math
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from ifrvp_core import metrics as M
from ifrvp_core.checkpoint import write_text_atomic
from ifrvp_core.data.io import DataError
from ifrvp_core.protocols import DEFAULT_METRICS, PROTOCOLS, PUBLISHED, Protocol, get_protocol, list_protocols, published_rows
from ifrvp_core.rollout import (
    BASELINE_KEYS,
    METHOD_KEYS,
    MODEL_KEY,
    DISExtrapolation,
    ModelStep,
    StepFn,
    copy_last,
    dis_extrapolation,
    model_step_fn,
    resolve_device,
    rollout,
    standard_methods,
)

__all__ = [
    "BASELINE_KEYS",
    "DEFAULT_METRICS",
    "DISExtrapolation",
    "EvaluationResults",
    "METHOD_KEYS",
    "MODEL_KEY",
    "PROTOCOLS",
    "PUBLISHED",
    "RESULTS_META_KEYS",
    "STEP_FORMS",
    "ModelStep",
    "Protocol",
    "copy_last",
    "dis_extrapolation",
    "evaluate",
    "evaluate_model",
    "format_table",
    "frame_steps",
    "get_protocol",
    "list_protocols",
    "load_results",
    "model_step_fn",
    "published_rows",
    "resolve_device",
    "results_protocol",
    "rollout",
    "running_means",
    "running_step_name",
    "running_steps",
    "save_results",
    "standard_methods",
    "step_number",
]

METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "ms_ssim": "MS-SSIM", "lpips": "LPIPS", "epe": "flow EPE (px)"}

RESULTS_FORMAT = "ifrvp-results/2"
# The two forms of "t+k" every table and results.json carries.
STEP_FORMS = {
    "t+k": "score of frame t+k alone (mean over samples)",
    "t+1..t+k": "running mean over the predicted frames t+1..t+k, as DMVFN's scripts/test.py prints for step k "
    "(papers quote it as t+k): the mean over samples of each frame, then the mean of those k means",
}
# Image metrics that get running means (what the published scripts print); EPE is t+1 only.
RUNNING_MEAN_METRICS = ("psnr", "ssim", "ms_ssim", "lpips")
# results.meta always has exactly these keys (None where unknown), so files written by different
# tools have the same key set.
RESULTS_META_KEYS = (
    "format", "written_by", "variant", "checkpoint", "scale_factor", "protocol", "dataset", "data_root",
    "steps", "samples", "max_samples", "metrics", "bgr_like_published", "step_forms", "unavailable",
)



def step_name(k: int) -> str:
    """"t+k": the score of frame t+k alone."""
    return f"t+{k}"


def running_step_name(k: int) -> str:
    """"t+1..t+k": the running mean over frames t+1..t+k."""
    return f"t+1..t+{k}"


def step_number(step: str) -> int:
    """k of "t+k" or "t+1..t+k"; ValueError for anything else."""
    text = str(step)
    head, _, tail = text.partition("..")
    if tail and head != "t+1":
        raise ValueError(f"not a step name: {step!r} (expected 't+k' or 't+1..t+k')")
    last = tail or head
    if not last.startswith("t+") or not last[2:].isdigit() or int(last[2:]) < 1:
        raise ValueError(f"not a step name: {step!r} (expected 't+k' or 't+1..t+k')")
    return int(last[2:])


def is_running_step(step: str) -> bool:
    return ".." in str(step)


def frame_steps(table: Mapping) -> list[str]:
    """The "t+k" keys of a method's table (or of a list of steps), ordered by k."""
    return sorted((s for s in table if not is_running_step(s)), key=step_number)


def running_steps(table: Mapping) -> list[str]:
    """The "t+1..t+k" keys of a method's table (or of a list of steps), ordered by k."""
    return sorted((s for s in table if is_running_step(s)), key=step_number)


# --------------------------------------------------------------------------------------------
# results


class EvaluationResults(dict):
    """``{method: {step: {metric: mean or None}}}`` plus what reports need.

    Steps are "t+1".."t+S" (frame t+k alone) and then "t+1..t+1".."t+1..t+S" (running means,
    `running_means`). The dict holds methods only; ``meta`` is an attribute here and the
    ``"meta"`` key only in the JSON file.

    Attributes:
        meta: what was evaluated and how (`RESULTS_META_KEYS`); empty for files without one.
        per_sample: ``{method: {step: {metric: np.ndarray (N,)}}}`` per-sample scores of both
            forms, in the order of `sample_names` / `sample_indices` (dataset indices).
        sample_names: N sample ids (the dataset's `name`).
        sample_indices: N dataset indices (to reload a sample, e.g. for a best/worst figure).
        unavailable: ``{metric: reason}`` for metrics reported as None.
        protocol: protocol name or None; steps: future steps scored.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.meta: dict = {}
        self.per_sample: dict = {}
        self.sample_names: list[str] = []
        self.sample_indices: list[int] = []
        self.unavailable: dict[str, str] = {}
        self.protocol: str | None = None
        self.steps: int = 0

    @property
    def methods(self) -> list[str]:
        return list(self)

    def best_worst(self, method: str, metric: str = "psnr", step: str = "t+1", count: int = 3):
        """The `count` best and worst samples of `method` by `metric` at `step`.

        Returns:
            (best, worst): lists of ``(sample_index, sample_name, score)``, best first / worst
            first ("best" respects the metric's direction: high PSNR, low LPIPS).
        """
        try:
            scores = np.asarray(self.per_sample[method][step][metric], dtype=np.float64)
        except KeyError as error:
            raise KeyError(f"no per-sample scores for method={method!r}, step={step!r}, metric={metric!r}") from error
        keep = np.flatnonzero(~np.isnan(scores))
        direction = M.METRIC_DIRECTIONS.get(metric, 1)
        order = keep[np.argsort(-direction * scores[keep], kind="stable")]

        def rows(indices):
            return [(int(self.sample_indices[i]), self.sample_names[i], float(scores[i])) for i in indices]

        return rows(order[:count]), rows(order[::-1][:count])


def running_means(table: Mapping, per_sample: Mapping | None = None) -> tuple[dict, dict]:
    """The "t+1..t+k" form of one method's "t+k" scores.

    The value for k is the mean of the k per-frame means t+1..t+k, the order of DMVFN's
    ``scripts/test.py`` (it sums each frame's score over the test set, divides by the number of
    samples, then prints ``sum(score[:k]) / k``). With every sample scored at every step, as
    here, this equals the mean over samples of each sample's own running mean, which is what
    the per-sample form holds. None where any frame t+1..t+k is None for that metric; only
    `RUNNING_MEAN_METRICS` (EPE is a t+1-only score).

    Args:
        table: ``{"t+k": {metric: mean or None}}`` of one method.
        per_sample: ``{"t+k": {metric: (N,) scores}}`` of the same method, or None.

    Returns:
        ({"t+1..t+k": {metric: value}}, {"t+1..t+k": {metric: (N,) per-sample running means}}).
    """
    frames = frame_steps(table)
    numbers = [step_number(s) for s in frames]
    if numbers != list(range(1, len(frames) + 1)):
        raise ValueError(f"running means need consecutive steps t+1..t+k, got {frames}")
    means: dict = {}
    samples: dict = {}
    for k in range(1, len(frames) + 1):
        window = frames[:k]
        row = {}
        for metric in RUNNING_MEAN_METRICS:
            if not all(metric in table[s] for s in window):
                continue
            values = [table[s][metric] for s in window]
            row[metric] = None if any(v is None for v in values) else float(sum(values) / k)
            if per_sample is not None and all(metric in per_sample.get(s, {}) for s in window):
                stacked = np.stack([np.asarray(per_sample[s][metric], dtype=np.float64) for s in window])
                samples.setdefault(running_step_name(k), {})[metric] = stacked.mean(axis=0)
        means[running_step_name(k)] = row
    return means, samples


def _finite_or_none(value):
    if value is None:
        return None
    return float(value)


def _unavailable_of(results) -> dict:
    meta_reasons = (getattr(results, "meta", None) or {}).get("unavailable") or {}
    return {**meta_reasons, **dict(getattr(results, "unavailable", {}) or {})}


def results_protocol(results) -> str | None:
    """The protocol name of evaluation results (`results.protocol`, else their ``meta``), or None."""
    return getattr(results, "protocol", None) or (getattr(results, "meta", None) or {}).get("protocol")


def _step_form(step: str) -> str:
    return "running_mean" if is_running_step(step) else "frame"


def save_results(results: Mapping, path) -> dict[str, Path]:
    """Write results as JSON, a CSV of the means next to it, and a per-sample CSV (all atomic).

    Files:
        ``path``: ``{"meta": {...}, method: {step: {metric: value|null}}}``, steps "t+1".."t+S"
        then "t+1..t+1".."t+1..t+S" (`STEP_FORMS`); a perfect PSNR is written as JSON
        ``Infinity``, which Python's json reads back. ``meta`` is ``results.meta`` (absent
        when the results have none).
        ``<stem>.csv``: method, step, form ("frame" or "running_mean"), metric, value, note (the
        reason where a metric is n/a).
        ``<stem>_per_sample.csv`` (when per-sample scores exist): index, name, method, step,
        form, metric, value.

    Returns:
        {"json": path, "csv": path, "per_sample": path (if written)}.
    """
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise ValueError(f"results path must end in .json, got {path}")
    if "meta" in results:
        raise ValueError("'meta' is not a method name: results.meta holds the run description")
    unavailable = _unavailable_of(results)
    plain = {
        method: {step: {metric: _finite_or_none(value) for metric, value in values.items()} for step, values in steps.items()}
        for method, steps in results.items()
    }
    meta = dict(getattr(results, "meta", None) or {})
    payload = {"meta": meta, **plain} if meta else plain
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
    written = {"json": path}

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["method", "step", "form", "metric", "value", "note"])
    for method, steps in plain.items():
        for step, values in steps.items():
            for metric, value in values.items():
                note = f"n/a ({unavailable[metric]})" if value is None and metric in unavailable else ""
                writer.writerow([method, step, _step_form(step), metric, "" if value is None else repr(value), note])
    csv_path = path.with_suffix(".csv")
    write_text_atomic(csv_path, buffer.getvalue())
    written["csv"] = csv_path

    per_sample = getattr(results, "per_sample", None)
    if per_sample:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["index", "name", "method", "step", "form", "metric", "value"])
        for method, steps in per_sample.items():
            for step, values in steps.items():
                for metric, scores in values.items():
                    for position, score in enumerate(np.asarray(scores, dtype=np.float64)):
                        writer.writerow([results.sample_indices[position], results.sample_names[position], method, step,
                                         _step_form(step), metric, repr(float(score))])
        sample_path = path.with_name(path.stem + "_per_sample.csv")
        write_text_atomic(sample_path, buffer.getvalue())
        written["per_sample"] = sample_path
    return written


def load_results(path) -> EvaluationResults:
    """Read what `save_results` wrote (means, meta, n/a reasons and per-sample scores if present).

    ``meta`` goes to ``results.meta``, never into the methods. Files from before the contract
    (no ``meta``, "t+k" steps only, any method names) are read as they are: ``meta`` is {} and
    no running means are invented.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"results file {path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"results file {path} must hold a JSON object of methods, got {type(data).__name__}")
    meta = data.pop("meta", None) or {}
    if not isinstance(meta, dict):
        raise ValueError(f"results file {path}: 'meta' must be an object, got {type(meta).__name__}")
    for method, steps in data.items():
        if not isinstance(steps, dict):
            raise ValueError(f"results file {path}: method {method!r} must map steps to metrics, got {type(steps).__name__}")
        for step in steps:
            try:
                step_number(step)
            except ValueError as error:
                raise ValueError(f"results file {path}: method {method!r}: {error}") from None
    results = EvaluationResults(data)
    results.meta = meta
    results.protocol = meta.get("protocol")
    results.unavailable.update(meta.get("unavailable") or {})
    csv_path = path.with_suffix(".csv")
    if csv_path.is_file():
        with csv_path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("note", "").startswith("n/a ("):
                    results.unavailable[row["metric"]] = row["note"][len("n/a (") : -1]
    sample_path = path.with_name(path.stem + "_per_sample.csv")
    if sample_path.is_file():
        order: dict[int, str] = {}
        collected: dict = {}
        with sample_path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                index = int(row["index"])
                order.setdefault(index, row["name"])
                collected.setdefault(row["method"], {}).setdefault(row["step"], {}).setdefault(row["metric"], []).append(float(row["value"]))
        results.sample_indices = list(order)
        results.sample_names = list(order.values())
        results.per_sample = {
            method: {step: {metric: np.asarray(v) for metric, v in values.items()} for step, values in steps.items()}
            for method, steps in collected.items()
        }
    frames = {step for values in data.values() for step in frame_steps(values)}
    results.steps = max((step_number(s) for s in frames), default=0)
    return results


def _cell(value, digits: int) -> str:
    if value == "missing":
        return "-"
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def format_table(results: Mapping, metrics: tuple[str, ...] | None = None, digits: dict | None = None,
                 published: bool = True) -> str:
    """Both forms of every metric as text: methods x steps, two blocks per metric.

    The first block is "frame t+k" (the score of frame t+k alone), the second "mean t+1..t+k"
    (running means, as DMVFN's scripts print and papers quote). t+1 / t+3 / t+5 (the quoted
    columns) are marked with *. Where the protocol (``results.protocol`` or ``meta``) has
    published DMVFN figures (`PUBLISHED`), they are rows of the running-mean block, "-" where
    that source gives no number. Unavailable metrics show "n/a" cells and a footnote
    "metric: n/a (reason)".
    """
    digits = {"psnr": 2, "ssim": 4, "ms_ssim": 4, "lpips": 4, "epe": 3, **(digits or {})}
    methods = list(results)
    if not methods:
        return "(no results)"
    steps: list[str] = []
    found_metrics: list[str] = []
    for method in methods:
        for step, values in results[method].items():
            if step not in steps:
                steps.append(step)
            for metric in values:
                if metric not in found_metrics:
                    found_metrics.append(metric)
    metrics = tuple(m for m in (metrics or found_metrics) if m in found_metrics)
    unavailable = _unavailable_of(results)
    reference = published_rows(results_protocol(results)) if published else ()
    labels = methods + [row["label"] for row in reference]
    name_width = max(len("method"), *(len(m) for m in labels))
    lines = []
    for metric in metrics:
        arrow = "lower is better" if M.METRIC_DIRECTIONS.get(metric, 1) < 0 else "higher is better"
        for form, form_steps, title in (
            ("frame", frame_steps(steps), "frame t+k: the score of frame t+k alone"),
            ("running", running_steps(steps), "mean t+1..t+k: running mean over t+1..t+k, as DMVFN's scripts print"),
        ):
            metric_steps = [s for s in form_steps if any(metric in results[m].get(s, {}) for m in methods)]
            if not metric_steps:
                continue
            headers = [("frame " if form == "frame" else "mean ") + s + ("*" if step_number(s) in (1, 3, 5) else "")
                       for s in metric_steps]
            width = max(9, *(len(h) for h in headers))
            lines.append(f"{METRIC_LABELS.get(metric, metric)} ({arrow}), {title}")
            lines.append("  " + "method".ljust(name_width) + "".join(h.rjust(width + 2) for h in headers))
            rows = [(method, results[method]) for method in methods]
            if form == "running":
                rows += [(row["label"], row["values"]) for row in reference
                         if any(metric in row["values"].get(s, {}) for s in metric_steps)]
            for label, table in rows:
                cells = [_cell(table.get(step, {}).get(metric, "missing"), digits.get(metric, 4)) for step in metric_steps]
                lines.append("  " + label.ljust(name_width) + "".join(c.rjust(width + 2) for c in cells))
            lines.append("")
    compare = "; compare with published numbers in the 'mean t+1..t+k' columns" if running_steps(steps) else ""
    lines.append("* t+1, t+3, t+5: the columns video prediction papers quote" + compare)
    for row in reference:
        lines.append(f"{row['label']}: {row['source']}")
    if (getattr(results, "meta", None) or {}).get("bgr_like_published"):
        lines.append("MS-SSIM and LPIPS scored in BGR channel order, like the published code (--bgr-like-published)")
    for metric, reason in unavailable.items():
        lines.append(f"{metric}: n/a ({reason})")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the evaluation loop


def _resolve_dataset(dataset_or_protocol, root, context_frames: int, steps: int):
    """(dataset, protocol or None) from a Dataset, a Protocol or a protocol name."""
    if isinstance(dataset_or_protocol, (str, Protocol)):
        protocol = get_protocol(dataset_or_protocol)
        protocol_steps = min(steps, protocol.steps) if steps else protocol.steps
        if steps and steps > protocol.steps:
            warnings.warn(f"protocol {protocol.name!r} scores {protocol.steps} future frame(s); steps={steps} reduced to {protocol.steps}")
        dataset = protocol.build_dataset(root, context_frames=max(context_frames, protocol.context_frames), steps=protocol_steps)
        return dataset, protocol
    if not hasattr(dataset_or_protocol, "__getitem__") or not hasattr(dataset_or_protocol, "__len__"):
        raise ValueError(
            f"dataset_or_protocol must be a dataset, a Protocol or one of {list_protocols()}, got {type(dataset_or_protocol).__name__}"
        )
    return dataset_or_protocol, None


def _dataset_name(dataset) -> str | None:
    name = getattr(dataset, "name", None)
    return name if isinstance(name, str) else None


def _collate(samples: list[dict]) -> dict:
    batch = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        if isinstance(values[0], torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                names = [s.get("name", "?") for s in samples]
                raise ValueError(f"samples {names} differ in {key!r} shape {sorted(shapes)}; use batch_size=1 for mixed frame sizes")
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    return batch


def evaluate(
    methods: Mapping[str, StepFn],
    dataset_or_protocol,
    steps: int = 5,
    batch_size: int = 4,
    device=None,
    num_workers: int = 0,
    max_samples: int | None = None,
    progress: bool = True,
    root=None,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    lpips_weights=None,
    bgr_like_published: bool = False,
) -> EvaluationResults:
    """Score step functions on a test set, each future step separately and as running means.

    Args:
        methods: {name: step function}; see the module docstring.
        dataset_or_protocol: a dataset of samples (docs/architecture.md), a `Protocol` or a
            protocol name (then built from `root` with enough context for every method).
        steps: future frames to predict recursively and score (capped at what samples hold).
        batch_size, num_workers: DataLoader settings (samples of different sizes need batch 1).
        device: where methods run and metrics are computed (None: CUDA when available).
        max_samples: score only the first N samples (quick looks; not comparable numbers).
        progress: tqdm bar over batches.
        root: dataset root when a protocol is given.
            An unreadable test file raises `DataError` naming it: evaluation never skips samples.
        metrics: image metrics to compute per step, from psnr, ssim, ms_ssim, lpips. The flow
            EPE at t+1 is added for methods with `flows` on data with ``gt_flow``.
        lpips_weights: AlexNet ImageNet weights file (default: torch hub cache).
        bgr_like_published: score MS-SSIM and LPIPS on BGR frames, a quirk of DMVFN's published
            code (`ifrvp_core.metrics.to_published_channel_order`; in effect only LPIPS changes).
            Off by default; recorded in ``results.meta``.

    Returns:
        EvaluationResults ``{method: {"t+1".."t+S", "t+1..t+1".."t+1..t+S": {metric: mean or
        None}}}`` with per-sample scores of both forms and ``meta`` (`RESULTS_META_KEYS`;
        variant, checkpoint, scale_factor and written_by are None: `evaluate_model` fills them).
    """
    from torch.utils.data import DataLoader, Subset
    from tqdm.auto import tqdm

    if not methods:
        raise ValueError("methods is empty: pass at least one {name: step function}")
    unknown = [m for m in metrics if m not in ("psnr", "ssim", "ms_ssim", "lpips")]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from psnr, ssim, ms_ssim, lpips")
    if "meta" in methods:
        raise ValueError("'meta' cannot be a method name: it is the run description in results.json")
    device = resolve_device(device)
    needed_context = max(int(getattr(fn, "context_frames", 2)) for fn in methods.values())
    dataset, protocol = _resolve_dataset(dataset_or_protocol, root, needed_context, steps)
    if protocol is not None:
        steps = min(steps, protocol.steps)  # _resolve_dataset already warned
    total = len(dataset)
    if total == 0:
        raise ValueError("the dataset has no samples")
    indices = list(range(total if max_samples is None else min(total, int(max_samples))))
    subset = dataset if len(indices) == total else Subset(dataset, indices)
    loader = DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=_collate)
    for fn in methods.values():
        if hasattr(fn, "to"):
            fn.to(device)

    lpips_reason = None
    if "lpips" in metrics:
        status = M.lpips_status(lpips_weights)
        lpips_reason = status.reason if status is not None else None

    accumulators = {name: M.MetricAccumulator() for name in methods}
    per_sample: dict = {name: {} for name in methods}
    names: list[str] = []
    used_steps = None
    checked_resolution = False
    bar = tqdm(loader, desc="evaluate", unit="batch", disable=not progress, leave=False)
    with torch.inference_mode():
        for batch in bar:
            used_steps, checked_resolution = _evaluate_batch(
                batch, methods, steps, used_steps, protocol, checked_resolution, device, metrics,
                lpips_reason, lpips_weights, accumulators, per_sample, names, bgr_like_published,
            )

    results = EvaluationResults()
    for method, accumulator in accumulators.items():
        means = accumulator.compute()
        table = {}
        for k in range(1, used_steps + 1):
            row = {metric: means.get(step_name(k), {}).get(metric) for metric in metrics}
            if step_name(k) in means and "epe" in means[step_name(k)]:
                row["epe"] = means[step_name(k)]["epe"]
            table[step_name(k)] = row
        results[method] = table
    results.per_sample = {
        method: {step: {metric: np.concatenate(parts) for metric, parts in values.items()} for step, values in steps_.items()}
        for method, steps_ in per_sample.items()
    }
    for method in methods:
        means, samples = running_means(results[method], results.per_sample[method])
        results[method].update(means)
        results.per_sample[method].update(samples)
    results.sample_names = names
    results.sample_indices = indices
    if lpips_reason is not None:
        results.unavailable["lpips"] = lpips_reason
    results.protocol = protocol.name if protocol is not None else None
    results.steps = used_steps
    results.meta = {
        "format": RESULTS_FORMAT,
        "written_by": None,
        "variant": None,
        "checkpoint": None,
        "scale_factor": None,
        "protocol": results.protocol,
        "dataset": protocol.dataset if protocol is not None else _dataset_name(dataset),
        "data_root": None if root is None else str(root),
        "steps": used_steps,
        "samples": len(names),
        "max_samples": None if max_samples is None else int(max_samples),
        "metrics": list(metrics),
        "bgr_like_published": bool(bgr_like_published),
        "step_forms": dict(STEP_FORMS),
        "unavailable": dict(results.unavailable),
    }
    return results


def evaluate_model(
    model: torch.nn.Module | None,
    dataset_or_protocol,
    *,
    checkpoint=None,
    baselines: bool = True,
    scale_factor: float = 1.0,
    written_by: str | None = None,
    steps: int | None = None,
    **options,
) -> EvaluationResults:
    """The contract's evaluation: a model as ``model`` and the baselines as ``copy_last`` and
    ``dis_extrapolation``, with the variant and checkpoint in ``results.meta``.

    `ifrvp evaluate` and notebook 05 both call this, so their results.json files agree.

    Args:
        model: the model (``model_name`` is recorded as the variant), or None for baselines only.
        dataset_or_protocol: as `evaluate`.
        checkpoint: the file the model came from (recorded; None for none).
        baselines: score copy_last and dis_extrapolation too.
        scale_factor: the model's internal scale factor.
        written_by: who ran it, for ``meta`` (e.g. "ifrvp evaluate").
        steps: future steps (None: the protocol's, 5 for a plain dataset).
        options: further `evaluate` keywords (root, batch_size, device, max_samples, metrics,
            lpips_weights, bgr_like_published, progress, num_workers).
    """
    if steps is None:
        steps = get_protocol(dataset_or_protocol).steps if isinstance(dataset_or_protocol, (str, Protocol)) else 5
    results = evaluate(standard_methods(model, baselines, scale_factor), dataset_or_protocol, steps=steps, **options)
    results.meta.update(
        written_by=written_by,
        variant=None if model is None else getattr(model, "model_name", type(model).__name__),
        checkpoint=None if checkpoint is None else str(checkpoint),
        scale_factor=None if model is None else float(scale_factor),
    )
    return results


def _evaluate_batch(batch, methods, steps, used_steps, protocol, checked_resolution, device, metrics,
                    lpips_reason, lpips_weights, accumulators, per_sample, names, bgr_like_published=False):
    """Roll out every method on one batch and add its scores; returns (used_steps, checked_resolution)."""
    skipped = sorted({name for names in batch.get("skipped_files", []) for name in names})
    if skipped:  # a dataset built with on_bad_sample="skip": evaluation never scores a replacement silently
        raise DataError(f"evaluation does not skip bad samples; unreadable file(s): {', '.join(skipped)} "
                        "(evaluate a dataset built with on_bad_sample='fail', the default)", skipped[0])
    context = batch["context"].to(device, non_blocking=True)
    target = batch["target"].to(device, non_blocking=True)
    if used_steps is None:
        available = target.shape[1]
        used_steps = min(steps, available)
        if steps > available:
            warnings.warn(f"samples hold {available} future frame(s); scoring t+1..t+{used_steps} instead of {steps}")
        expected = torch.arange(2, 2 + used_steps, dtype=torch.float32)
        times = batch["target_times"][0, :used_steps].float()
        if not torch.allclose(times, expected):
            raise ValueError(
                f"rollout evaluation needs future frames at t = {expected.tolist()} (extrapolation, consecutive); "
                f"the dataset's targets are at {batch['target_times'][0].tolist()}"
            )
    if protocol is not None and protocol.resolution and not checked_resolution:
        checked_resolution = True
        if tuple(target.shape[-2:]) != tuple(protocol.resolution):
            warnings.warn(
                f"protocol {protocol.name!r} scores {protocol.resolution[0]}x{protocol.resolution[1]} frames but the data is "
                f"{target.shape[-2]}x{target.shape[-1]}: numbers are not comparable with published ones"
            )
    names.extend(batch.get("name", [f"sample{len(names) + i}" for i in range(context.shape[0])]))
    for method, step_fn in methods.items():
        predictions = rollout(step_fn, context, used_steps)
        scores = _score_batch(predictions, target[:, :used_steps], metrics, lpips_reason is None, lpips_weights,
                              bgr_like_published)
        if "gt_flow" in batch and hasattr(step_fn, "flows"):
            flows = step_fn.flows(context)
            fields = flows.shape[1] // 2
            gt_flow = batch["gt_flow"].to(device)[:, -2 * fields :]
            valid = batch["gt_valid"].to(device)[:, -fields:] if "gt_valid" in batch else None
            scores[(step_name(1), "epe")] = M.epe(flows, gt_flow, valid)
        for (step, metric), values in scores.items():
            accumulators[method].update(step, metric, values)
            per_sample[method].setdefault(step, {}).setdefault(metric, []).append(values.double().cpu().numpy())

    return used_steps, checked_resolution


def _score_batch(predictions, targets, metrics, with_lpips: bool, lpips_weights, bgr_like_published: bool = False) -> dict:
    """predictions, targets: (B, S, 3, H, W) -> {("t+k", metric): (B,) scores}.

    With `bgr_like_published`, MS-SSIM and LPIPS see BGR frames (`M.BGR_FLIPPED_METRICS`).
    """
    functions = {"psnr": M.psnr, "ssim": M.ssim, "ms_ssim": M.ms_ssim}
    scores = {}
    for index in range(predictions.shape[1]):
        rgb_prediction = predictions[:, index].float().clamp(0, 1)
        rgb_target = targets[:, index].float()
        for metric in metrics:
            prediction, target = rgb_prediction, rgb_target
            if bgr_like_published and metric in M.BGR_FLIPPED_METRICS:
                prediction, target = M.to_published_channel_order(prediction), M.to_published_channel_order(target)
            if metric == "lpips":
                if with_lpips:
                    scores[(step_name(index + 1), metric)] = M.lpips(prediction, target, lpips_weights)
                continue
            scores[(step_name(index + 1), metric)] = functions[metric](prediction, target)
    return scores
