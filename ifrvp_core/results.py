"""Evaluation results: step names, the results object, running means, files and tables.

Results (`ifrvp_core.evaluate.evaluate`) are a dict ``{method: {step: {metric: value or None}}}``
(None: metric unavailable, reason in ``results.unavailable``) with two forms of every step
(`STEP_FORMS`):

- ``"t+k"``: the score of frame t+k alone, mean over samples;
- ``"t+1..t+k"``: the running mean over the predicted frames t+1..t+k, which is what DMVFN's
  ``scripts/test.py`` prints for step k and what papers quote as "t+3", "t+5" (`running_means`).

The results also carry ``results.meta`` (what was evaluated and how, `RESULTS_META_KEYS`) and
per-sample scores of both forms for best/worst-sample reports (``results.per_sample``,
``results.best_worst(...)``). `save_results` writes ``{"meta": {...}, method: {step: {metric:
value}}}`` (+ CSVs), whoever calls it; `load_results` reads it back; `format_table` prints both
forms next to the protocol's published figures.

    >>> print(format_table(results)); save_results(results, "reports/eval.json")
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Mapping

import numpy as np

from ifrvp_core import metrics as M
from ifrvp_core.checkpoint import write_text_atomic
from ifrvp_core.protocols import published_rows

__all__ = [
    "VERDICT_METRICS",
    "beats_baseline",
    "METRIC_LABELS",
    "RESULTS_FORMAT",
    "RESULTS_META_KEYS",
    "RUNNING_MEAN_METRICS",
    "STEP_FORMS",
    "EvaluationResults",
    "format_table",
    "frame_steps",
    "is_running_step",
    "load_results",
    "parse_step",
    "results_protocol",
    "running_means",
    "running_step_name",
    "running_steps",
    "save_results",
    "step_name",
    "step_number",
]

# How tables name each metric.
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "ms_ssim": "MS-SSIM", "lpips": "LPIPS", "epe": "flow EPE (px)"}

RESULTS_FORMAT = "ifrvp-results/2"
# The two forms of "t+k" every table and results.json carries.
STEP_FORMS = {
    "t+k": "score of frame t+k alone (mean over samples)",
    "t+1..t+k": "running mean over the predicted frames t+1..t+k, as DMVFN's scripts/test.py prints for step k "
    "(papers quote it as t+k): the mean over samples of each frame, then the mean of those k means",
}
# Image metrics that get running means (what the published scripts print); EPE is t+1 only.
RUNNING_MEAN_METRICS = M.IMAGE_METRICS
# results.meta always has exactly these keys (None where unknown), so files written by different
# tools have the same key set.
RESULTS_META_KEYS = (
    "format", "written_by", "variant", "checkpoint", "scale_factor", "precision", "protocol", "dataset", "data_root",
    "steps", "samples", "max_samples", "metrics", "bgr_like_published", "step_forms", "unavailable",
)


# The one verdict of every report (training's summary.json, notebook 05's headline, the workbook
# index): does the model score higher than a baseline on the same samples?
VERDICT_METRICS = ("psnr", "ssim")


def beats_baseline(model: Mapping, baseline: Mapping) -> dict:
    """{"psnr": bool, "ssim": bool}: whether `model`'s scores are higher than `baseline`'s."""
    return {metric: bool(model[metric] > baseline[metric]) for metric in VERDICT_METRICS}


def step_name(k: int) -> str:
    """"t+k": the score of frame t+k alone."""
    return f"t+{k}"


def running_step_name(k: int) -> str:
    """"t+1..t+k": the running mean over frames t+1..t+k."""
    return f"t+1..t+{k}"


def parse_step(step: str) -> tuple[int, bool]:
    """(k, running) of a step name: "t+k" -> (k, False), "t+1..t+k" -> (k, True).

    The one reader of step names (`step_number`, `is_running_step`, the step orderings and
    `load_results` go through it). ValueError for anything else ("t+0", "t+2..t+5", "meta").
    """
    text = str(step)
    head, dots, tail = text.partition("..")
    last = tail if dots else head
    if (dots and head != "t+1") or not last.startswith("t+") or not last[2:].isdigit() or int(last[2:]) < 1:
        raise ValueError(f"not a step name: {step!r} (expected 't+k' or 't+1..t+k')")
    return int(last[2:]), bool(dots)


def step_number(step: str) -> int:
    """k of "t+k" or "t+1..t+k"; ValueError for anything else."""
    return parse_step(step)[0]


def is_running_step(step: str) -> bool:
    """True for a running-mean step "t+1..t+k", False for a frame step "t+k"; ValueError for anything else."""
    return parse_step(step)[1]


def frame_steps(table: Mapping) -> list[str]:
    """The "t+k" keys of a method's table (or of a list of steps), ordered by k."""
    return sorted((s for s in table if not is_running_step(s)), key=step_number)


def running_steps(table: Mapping) -> list[str]:
    """The "t+1..t+k" keys of a method's table (or of a list of steps), ordered by k."""
    return sorted((s for s in table if is_running_step(s)), key=step_number)


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


def _finite_or_none(value) -> float | None:
    """`value` as a float, or None for None, NaN and +-inf (results.json is strict JSON)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


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
        then "t+1..t+1".."t+1..t+S" (`STEP_FORMS`); a mean that is not finite (the ``inf``
        PSNR of a perfect copy, a NaN) is written as null, so the file is strict JSON (the
        results in memory and the per-sample CSV keep it). ``meta`` is ``results.meta``
        (absent when the results have none).
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
    plain = {
        method: {step: {metric: _finite_or_none(value) for metric, value in values.items()} for step, values in steps.items()}
        for method, steps in results.items()
    }
    meta = dict(getattr(results, "meta", None) or {})
    payload = {"meta": meta, **plain} if meta else plain
    means = _csv_text(["method", "step", "form", "metric", "value", "note"], _mean_rows(plain, _unavailable_of(results)))
    per_sample = getattr(results, "per_sample", None)
    samples = _csv_text(["index", "name", "method", "step", "form", "metric", "value"], _per_sample_rows(results)) if per_sample else None

    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
    written = {"json": path}
    csv_path = path.with_suffix(".csv")
    write_text_atomic(csv_path, means)
    written["csv"] = csv_path
    if samples is not None:
        sample_path = path.with_name(path.stem + "_per_sample.csv")
        write_text_atomic(sample_path, samples)
        written["per_sample"] = sample_path
    return written


def _csv_text(header: list[str], rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _mean_rows(plain: Mapping, unavailable: Mapping):
    """Rows of ``<stem>.csv``: method, step, form, metric, value ("" for None), note (the n/a reason)."""
    for method, steps in plain.items():
        for step, values in steps.items():
            for metric, value in values.items():
                note = f"n/a ({unavailable[metric]})" if value is None and metric in unavailable else ""
                yield [method, step, _step_form(step), metric, "" if value is None else repr(value), note]


def _per_sample_rows(results):
    """Rows of ``<stem>_per_sample.csv``: index, name, method, step, form, metric, value."""
    for method, steps in results.per_sample.items():
        for step, values in steps.items():
            for metric, scores in values.items():
                for position, score in enumerate(np.asarray(scores, dtype=np.float64)):
                    yield [results.sample_indices[position], results.sample_names[position], method, step,
                           _step_form(step), metric, repr(float(score))]


def load_results(path) -> EvaluationResults:
    """Read what `save_results` wrote (means, meta, n/a reasons and per-sample scores if present).

    ``meta`` goes to ``results.meta``, never into the methods. Files from before the contract
    (no ``meta``, "t+k" steps only, any method names) are read as they are: ``meta`` is {} and
    no running means are invented.
    """
    path = Path(path)
    data, meta = _read_results_json(path)
    results = EvaluationResults(data)
    results.meta = meta
    results.protocol = meta.get("protocol")
    results.unavailable.update(meta.get("unavailable") or {})
    results.unavailable.update(_read_unavailable_notes(path.with_suffix(".csv")))
    sample_path = path.with_name(path.stem + "_per_sample.csv")
    if sample_path.is_file():
        results.sample_indices, results.sample_names, results.per_sample = _read_per_sample(sample_path)
    frames = {step for values in data.values() for step in frame_steps(values)}
    results.steps = max((step_number(s) for s in frames), default=0)
    return results


def _read_results_json(path: Path) -> tuple[dict, dict]:
    """(methods, meta) of a results file; ValueError naming the file for bad content."""
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
    return data, meta


def _read_unavailable_notes(csv_path: Path) -> dict[str, str]:
    """{metric: reason} from the "n/a (reason)" notes of ``<stem>.csv`` ({} without the file)."""
    reasons: dict[str, str] = {}
    if csv_path.is_file():
        with csv_path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("note", "").startswith("n/a ("):
                    reasons[row["metric"]] = row["note"][len("n/a (") : -1]
    return reasons


def _read_per_sample(sample_path: Path) -> tuple[list[int], list[str], dict]:
    """(sample indices, sample names, {method: {step: {metric: (N,) scores}}}) of ``<stem>_per_sample.csv``."""
    order: dict[int, str] = {}
    collected: dict = {}
    with sample_path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            index = int(row["index"])
            order.setdefault(index, row["name"])
            collected.setdefault(row["method"], {}).setdefault(row["step"], {}).setdefault(row["metric"], []).append(float(row["value"]))
    per_sample = {
        method: {step: {metric: np.asarray(v) for metric, v in values.items()} for step, values in steps.items()}
        for method, steps in collected.items()
    }
    return list(order), list(order.values()), per_sample


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
    steps, found_metrics = _steps_and_metrics(results)
    metrics = tuple(m for m in (metrics or found_metrics) if m in found_metrics)
    reference = published_rows(results_protocol(results)) if published else ()
    labels = methods + [row["label"] for row in reference]
    name_width = max(len("method"), *(len(m) for m in labels))
    lines = []
    for metric in metrics:
        for form in ("frame", "running"):
            lines += _metric_block(results, metric, form, steps, reference, name_width, digits.get(metric, 4))
    compare = "; compare with published numbers in the 'mean t+1..t+k' columns" if running_steps(steps) else ""
    lines.append("* t+1, t+3, t+5: the columns video prediction papers quote" + compare)
    for row in reference:
        lines.append(f"{row['label']}: {row['source']}")
    if (getattr(results, "meta", None) or {}).get("bgr_like_published"):
        lines.append("MS-SSIM and LPIPS scored in BGR channel order, like the published code (--bgr-like-published)")
    for metric, reason in _unavailable_of(results).items():
        lines.append(f"{metric}: n/a ({reason})")
    return "\n".join(lines)


def _steps_and_metrics(results: Mapping) -> tuple[list[str], list[str]]:
    """Every step and every metric of any method, in the order first met."""
    steps: list[str] = []
    metrics: list[str] = []
    for table in results.values():
        for step, values in table.items():
            if step not in steps:
                steps.append(step)
            for metric in values:
                if metric not in metrics:
                    metrics.append(metric)
    return steps, metrics


_FORM_TITLES = {
    "frame": "frame t+k: the score of frame t+k alone",
    "running": "mean t+1..t+k: running mean over t+1..t+k, as DMVFN's scripts print",
}


def _metric_block(results: Mapping, metric: str, form: str, steps: list[str], reference, name_width: int,
                  digits: int) -> list[str]:
    """The lines of one metric in one step form ("frame" or "running"): title, header, a row per
    method (and per published reference in the running form), a blank line; [] when no method has it."""
    methods = list(results)
    form_steps = frame_steps(steps) if form == "frame" else running_steps(steps)
    metric_steps = [s for s in form_steps if any(metric in results[m].get(s, {}) for m in methods)]
    if not metric_steps:
        return []
    arrow = "lower is better" if M.METRIC_DIRECTIONS.get(metric, 1) < 0 else "higher is better"
    headers = [("frame " if form == "frame" else "mean ") + s + ("*" if step_number(s) in (1, 3, 5) else "")
               for s in metric_steps]
    width = max(9, *(len(h) for h in headers))
    lines = [f"{METRIC_LABELS.get(metric, metric)} ({arrow}), {_FORM_TITLES[form]}",
             "  " + "method".ljust(name_width) + "".join(h.rjust(width + 2) for h in headers)]
    rows = [(method, results[method]) for method in methods]
    if form == "running":
        rows += [(row["label"], row["values"]) for row in reference
                 if any(metric in row["values"].get(s, {}) for s in metric_steps)]
    for label, table in rows:
        cells = [_cell(table.get(step, {}).get(metric, "missing"), digits) for step in metric_steps]
        lines.append("  " + label.ljust(name_width) + "".join(c.rjust(width + 2) for c in cells))
    lines.append("")
    return lines
