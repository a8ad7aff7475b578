"""Evaluation protocols, baselines, recursive rollouts and the evaluation loop.

A *step function* maps context frames (B, K, 3, H, W) in [0, 1], oldest first, to the next frame
(B, 3, H, W). Models (`model_step_fn`) and the baselines every table includes (`copy_last`,
`dis_extrapolation`) are step functions; `rollout` applies one recursively, each prediction
becoming the newest context frame, which is how video prediction papers (DMVFN, section 4)
produce t+2 ... t+5. A step function may also have a ``flows(context) -> (B, 2K, H, W)`` method
(flows from the predicted frame to each of its K context frames, pixels) and a ``context_frames``
attribute (how many of the newest frames it uses); with ground-truth flow (the synthetic set)
`evaluate` then reports the t+1 flow EPE.

Results (`evaluate`) are a dict ``{method: {"t+k": {metric: value or None}}}`` (None: metric
unavailable, reason in ``results.unavailable``) that also carries per-sample scores for
best/worst-sample reports (``results.per_sample``, ``results.best_worst(...)``).

    >>> from ifrvp_core.evaluate import evaluate, copy_last, dis_extrapolation, model_step_fn
    >>> results = evaluate({"IFRNet": model_step_fn(model), "copy-last": copy_last,
    ...                     "DIS": dis_extrapolation}, "synthetic", steps=5)
    >>> print(format_table(results)); save_results(results, "reports/eval.json")
"""
from __future__ import annotations

import csv
import io
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from ifrvp_core import metrics as M
from ifrvp_core.checkpoint import write_text_atomic
from ifrvp_core.data.io import DataError

__all__ = [
    "DEFAULT_METRICS",
    "DISExtrapolation",
    "EvaluationResults",
    "ModelStep",
    "Protocol",
    "copy_last",
    "dis_extrapolation",
    "evaluate",
    "format_table",
    "get_protocol",
    "list_protocols",
    "load_results",
    "model_step_fn",
    "resolve_device",
    "rollout",
    "save_results",
]

DEFAULT_METRICS = ("psnr", "ssim", "ms_ssim", "lpips")
HEADLINE_STEPS = ("t+1", "t+3", "t+5")
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "ms_ssim": "MS-SSIM", "lpips": "LPIPS", "epe": "flow EPE (px)"}

StepFn = Callable[[torch.Tensor], torch.Tensor]


def step_name(k: int) -> str:
    return f"t+{k}"


def resolve_device(device=None) -> torch.device:
    """`device` as a torch.device; None picks CUDA when available, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --------------------------------------------------------------------------------------------
# protocols


@dataclass(frozen=True)
class Protocol:
    """How a dataset is evaluated so that numbers compare with published ones.

    Attributes:
        name: protocol name (`list_protocols()`).
        dataset: `ifrvp_core.data.build_dataset` name.
        split: test split passed to build_dataset.
        context_frames: K context frames the protocol gives a method (models with more context
            frames get a longer window; see `build_dataset`).
        steps: future frames scored (t+1 ... t+steps), predicted recursively.
        frame_stride: source frames between consecutive samples (None: the dataset default).
        resolution: (H, W) the frames are scored at (full frames, no crop), or None for any.
        metrics: what the protocol reports.
        notes: where the choices come from.
        dataset_options: extra build_dataset keywords, as (key, value) pairs.
    """

    name: str
    dataset: str
    split: str
    context_frames: int
    steps: int
    frame_stride: int | None = None
    resolution: tuple[int, int] | None = None
    metrics: tuple[str, ...] = DEFAULT_METRICS
    notes: str = ""
    dataset_options: tuple[tuple[str, object], ...] = ()

    def build_dataset(self, root=None, context_frames: int | None = None, steps: int | None = None, **overrides):
        """The protocol's test dataset (`ifrvp_core.data.build_dataset`), no augmentation.

        Args:
            root: dataset root (synthetic: None generates/reuses the default set).
            context_frames: K for models that need more context than the protocol's 2.
            steps: future frames per sample (default: the protocol's).
            overrides: further build_dataset keywords.
        """
        from ifrvp_core.data import build_dataset

        options = dict(self.dataset_options)
        options.update(overrides)
        return build_dataset(
            self.dataset,
            root=root,
            split=self.split,
            context_frames=context_frames or self.context_frames,
            future_frames=steps or self.steps,
            task="extrapolate",
            frame_stride=self.frame_stride,
            augment=False,
            **options,
        )


PROTOCOLS: dict[str, Protocol] = {
    "cityscapes": Protocol(
        "cityscapes", "cityscapes", "val", context_frames=2, steps=5, resolution=(1024, 2048),
        notes="leftImg8bit_sequence val (500 snippets, 17 fps); frames 18-19 -> 20-24 of each "
        "30-frame snippet (t+1 is the annotated 20th frame, as DMVFN); full 1024x2048, recursive t+1..t+5.",
    ),
    "vimeo90k": Protocol(
        "vimeo90k", "vimeo90k", "test", context_frames=2, steps=1, resolution=(256, 448),
        notes="septuplet test list (sep_testlist.txt): im1, im2 -> im3 (t+1 only); 448x256.",
        dataset_options=(("variant", "septuplet"),),
    ),
    "gopro": Protocol(
        "gopro", "gopro", "test", context_frames=2, steps=5, frame_stride=8, resolution=(720, 1280),
        notes="240 fps test sequences sampled every 8th frame (30 fps); 2 context, up to 5 future frames.",
    ),
    "frames": Protocol(
        "frames", "frames", "test", context_frames=2, steps=5,
        notes="any video or frames folder: the last 10% of each clip (never trained on), non-overlapping windows.",
        dataset_options=(("test_fraction", 0.1),),
    ),
    "frames_heldout": Protocol(
        "frames_heldout", "frames", "test", context_frames=2, steps=5,
        notes="a clip (or folder of clips) never trained on: non-overlapping windows over the whole clip.",
        dataset_options=(("test_fraction", 1.0),),
    ),
    "synthetic": Protocol(
        "synthetic", "synthetic", "test", context_frames=2, steps=5,
        metrics=DEFAULT_METRICS + ("epe",),
        notes="built-in generator's test split (own seed); EPE of the t+1 target->context flows "
        "against gt_flow on gt_valid.",
    ),
}


def list_protocols() -> list[str]:
    return list(PROTOCOLS)


def get_protocol(name: str | Protocol) -> Protocol:
    """The named Protocol (a Protocol passes through); ValueError lists the valid names."""
    if isinstance(name, Protocol):
        return name
    key = str(name).lower().replace("-", "").replace("_", "")
    for protocol_name, protocol in PROTOCOLS.items():
        if protocol_name.replace("_", "") == key:
            return protocol
    raise ValueError(f"unknown protocol {name!r}; available: {', '.join(PROTOCOLS)}")


# --------------------------------------------------------------------------------------------
# rollouts and step functions


def _check_context(context: torch.Tensor, needed: int = 1, who: str = "context") -> None:
    if not isinstance(context, torch.Tensor) or context.dim() != 5 or context.shape[2] != 3:
        shape = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
        raise ValueError(f"{who} must be (B, K, 3, H, W), got {shape}")
    if context.shape[1] < needed:
        raise ValueError(f"{who} has {context.shape[1]} frames but {needed} are needed")


def rollout(step_fn: StepFn, context: torch.Tensor, steps: int) -> torch.Tensor:
    """Predict `steps` frames recursively.

    Args:
        step_fn: (B, K, 3, H, W) -> (B, 3, H, W), the frame after the newest context frame.
        context: (B, K, 3, H, W) context frames, oldest first.
        steps: number of future frames.

    Returns:
        (B, steps, 3, H, W): prediction k is made from the window that ends with predictions
        1..k-1 (the oldest frames dropped), so errors compound as in deployment.
    """
    _check_context(context)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    window = context
    predictions = []
    with torch.inference_mode():
        for _ in range(steps):
            frame = step_fn(window)
            if frame.shape != window[:, -1].shape:
                raise ValueError(
                    f"step function returned {tuple(frame.shape)}, expected {tuple(window[:, -1].shape)}"
                )
            predictions.append(frame)
            window = torch.cat([window[:, 1:], frame.unsqueeze(1).to(window.dtype)], dim=1)
    return torch.stack(predictions, dim=1)


class ModelStep:
    """An IFRNet-family model as a step function (extrapolation, t = 2).

    With the time convention of docs/architecture.md the newest context frame sits at t = 1, so
    the next frame is t = 2. The model uses the newest `model.context_frames` frames of the window.
    """

    def __init__(self, model: torch.nn.Module, scale_factor: float = 1.0, target_time: float = 2.0):
        self.model = model
        self.scale_factor = float(scale_factor)
        self.target_time = float(target_time)
        self.context_frames = int(getattr(model, "context_frames", 2))

    def _window(self, context: torch.Tensor) -> torch.Tensor:
        _check_context(context, self.context_frames, who=f"context for {getattr(self.model, 'model_name', 'model')}")
        return context[:, -self.context_frames :]

    def to(self, device) -> "ModelStep":
        self.model.to(device)
        return self

    def __call__(self, context: torch.Tensor) -> torch.Tensor:
        """(B, K>=model K, 3, H, W) -> (B, 3, H, W) predicted next frame."""
        return self.model.predict(self._window(context), t=self.target_time, scale_factor=self.scale_factor)

    @torch.inference_mode()
    def flows(self, context: torch.Tensor) -> torch.Tensor:
        """(B, K, 3, H, W) -> (B, 2K_model, H, W) flows from the predicted frame to each context frame."""
        output = self.model(self._window(context), self.target_time, scale_factor=self.scale_factor)
        return output["flows"][0]

    def __repr__(self) -> str:
        return f"ModelStep({getattr(self.model, 'model_name', type(self.model).__name__)}, scale_factor={self.scale_factor})"


def model_step_fn(model: torch.nn.Module, scale_factor: float = 1.0) -> ModelStep:
    """Wrap a model with `predict(frames, t, scale_factor)` as a step function predicting t = 2."""
    return ModelStep(model, scale_factor)


def copy_last(context: torch.Tensor) -> torch.Tensor:
    """Baseline: the newest context frame. (B, K, 3, H, W) -> (B, 3, H, W)."""
    _check_context(context)
    return context[:, -1]


copy_last.context_frames = 1


class DISExtrapolation:
    """Baseline: constant-velocity extrapolation with OpenCV DIS optical flow.

    The forward flow F (newest-1 -> newest, defined at pixels of frame newest-1) is computed with
    ``cv2.DISOpticalFlow_create(PRESET_MEDIUM)`` on gray uint8 frames and assumed constant. The
    next frame is ``newest(p - F(p))``, i.e. `backward_warp(newest, -F)` ("forward flow,
    backward-warped"): the exact constant-motion prediction samples ``-F`` at the *target* pixel,
    here approximated by F at the same pixel position, which is exact for uniform motion and
    blurs motion boundaries by one frame of displacement. Occlusions are not handled.
    """

    context_frames = 2

    def __init__(self, preset: int | None = None):
        import cv2

        self.preset = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM if preset is None else preset

    def forward_flow(self, context: torch.Tensor) -> torch.Tensor:
        """(B, K>=2, 3, H, W) -> (B, 2, H, W) DIS flow from frame newest-1 to newest (pixels)."""
        from ifrvp_core.motion_prior import dis_flow_batch

        _check_context(context, 2, who="context for DIS extrapolation")
        return dis_flow_batch(context[:, -2], context[:, -1], self.preset).to(device=context.device, dtype=torch.float32)

    def __call__(self, context: torch.Tensor) -> torch.Tensor:
        """(B, K>=2, 3, H, W) -> (B, 3, H, W) newest frame warped one more step along the flow."""
        from ifrvp_core.warp import backward_warp

        newest = context[:, -1]
        forward = self.forward_flow(context)
        return backward_warp(newest.float(), -forward).to(newest.dtype)

    def flows(self, context: torch.Tensor) -> torch.Tensor:
        """(B, K, 3, H, W) -> (B, 2K, H, W) constant-velocity flows from the target to each frame.

        Context frame k (0 = oldest) is K - k frames before the target, so its flow is -(K - k) F.
        """
        k = context.shape[1]
        forward = self.forward_flow(context)
        return torch.cat([-(k - index) * forward for index in range(k)], dim=1)

    def __repr__(self) -> str:
        return f"DISExtrapolation(preset={self.preset})"


dis_extrapolation = DISExtrapolation()


# --------------------------------------------------------------------------------------------
# results


class EvaluationResults(dict):
    """``{method: {"t+k": {metric: mean or None}}}`` plus what reports need.

    Attributes:
        per_sample: ``{method: {"t+k": {metric: np.ndarray (N,)}}}`` per-sample scores, in the
            order of `sample_names` / `sample_indices` (dataset indices).
        sample_names: N sample ids (the dataset's `name`).
        sample_indices: N dataset indices (to reload a sample, e.g. for a best/worst figure).
        unavailable: ``{metric: reason}`` for metrics reported as None.
        protocol: protocol name or None; steps: future steps scored.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
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


def _finite_or_none(value):
    if value is None:
        return None
    return float(value)


def _unavailable_of(results) -> dict:
    return dict(getattr(results, "unavailable", {}) or {})


def save_results(results: Mapping, path) -> dict[str, Path]:
    """Write results as JSON, a CSV of the means next to it, and a per-sample CSV (all atomic).

    Files: ``path`` (``{method: {"t+k": {metric: value|null}}}``; a perfect PSNR is written as
    JSON ``Infinity``, which Python's json reads back), ``<stem>.csv`` (method, step, metric,
    value, note: the reason where a metric is n/a) and, when per-sample scores exist,
    ``<stem>_per_sample.csv`` (index, name, method, step, metric, value).

    Returns:
        {"json": path, "csv": path, "per_sample": path (if written)}.
    """
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise ValueError(f"results path must end in .json, got {path}")
    unavailable = _unavailable_of(results)
    plain = {
        method: {step: {metric: _finite_or_none(value) for metric, value in values.items()} for step, values in steps.items()}
        for method, steps in results.items()
    }
    write_text_atomic(path, json.dumps(plain, indent=2) + "\n")
    written = {"json": path}

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["method", "step", "metric", "value", "note"])
    for method, steps in plain.items():
        for step, values in steps.items():
            for metric, value in values.items():
                note = f"n/a ({unavailable[metric]})" if value is None and metric in unavailable else ""
                writer.writerow([method, step, metric, "" if value is None else repr(value), note])
    csv_path = path.with_suffix(".csv")
    write_text_atomic(csv_path, buffer.getvalue())
    written["csv"] = csv_path

    per_sample = getattr(results, "per_sample", None)
    if per_sample:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["index", "name", "method", "step", "metric", "value"])
        for method, steps in per_sample.items():
            for step, values in steps.items():
                for metric, scores in values.items():
                    for position, score in enumerate(np.asarray(scores, dtype=np.float64)):
                        writer.writerow([results.sample_indices[position], results.sample_names[position], method, step, metric, repr(float(score))])
        sample_path = path.with_name(path.stem + "_per_sample.csv")
        write_text_atomic(sample_path, buffer.getvalue())
        written["per_sample"] = sample_path
    return written


def load_results(path) -> EvaluationResults:
    """Read what `save_results` wrote (JSON means, n/a reasons and per-sample scores if present)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"results file {path} is not valid JSON: {error}") from error
    results = EvaluationResults(data)
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
    steps = {step for values in data.values() for step in values}
    results.steps = max((int(s.split("+")[-1]) for s in steps), default=0)
    return results


def format_table(results: Mapping, metrics: tuple[str, ...] | None = None, digits: dict | None = None) -> str:
    """Methods x steps, one block per metric; t+1 / t+3 / t+5 (the quoted columns) marked with *.

    Unavailable metrics show "n/a" cells and a footnote "metric: n/a (reason)".
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
    steps.sort(key=lambda s: int(s.split("+")[-1]) if s.split("+")[-1].isdigit() else 10**9)
    metrics = tuple(m for m in (metrics or found_metrics) if m in found_metrics)
    unavailable = _unavailable_of(results)
    name_width = max(len("method"), *(len(m) for m in methods))
    lines = []
    for metric in metrics:
        metric_steps = [s for s in steps if any(metric in results[m].get(s, {}) for m in methods)]
        arrow = "lower is better" if M.METRIC_DIRECTIONS.get(metric, 1) < 0 else "higher is better"
        headers = [s + ("*" if s in HEADLINE_STEPS else "") for s in metric_steps]
        width = max(9, *(len(h) for h in headers))
        lines.append(f"{METRIC_LABELS.get(metric, metric)} ({arrow})")
        lines.append("  " + "method".ljust(name_width) + "".join(h.rjust(width + 2) for h in headers))
        for method in methods:
            cells = []
            for step in metric_steps:
                value = results[method].get(step, {}).get(metric, "missing")
                if value == "missing":
                    cells.append("-")
                elif value is None:
                    cells.append("n/a")
                elif math.isinf(value):
                    cells.append("inf")
                else:
                    cells.append(f"{value:.{digits.get(metric, 4)}f}")
            lines.append("  " + method.ljust(name_width) + "".join(c.rjust(width + 2) for c in cells))
        lines.append("")
    lines.append("* t+1, t+3, t+5: the columns video prediction papers quote")
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
) -> EvaluationResults:
    """Score step functions on a test set, each future step separately.

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

    Returns:
        EvaluationResults ``{method: {"t+k": {metric: mean or None}}}`` with per-sample scores.
    """
    from torch.utils.data import DataLoader, Subset
    from tqdm.auto import tqdm

    if not methods:
        raise ValueError("methods is empty: pass at least one {name: step function}")
    unknown = [m for m in metrics if m not in ("psnr", "ssim", "ms_ssim", "lpips")]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from psnr, ssim, ms_ssim, lpips")
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
                lpips_reason, lpips_weights, accumulators, per_sample, names,
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
    results.sample_names = names
    results.sample_indices = indices
    if lpips_reason is not None:
        results.unavailable["lpips"] = lpips_reason
    results.protocol = protocol.name if protocol is not None else None
    results.steps = used_steps
    return results


def _evaluate_batch(batch, methods, steps, used_steps, protocol, checked_resolution, device, metrics,
                    lpips_reason, lpips_weights, accumulators, per_sample, names):
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
        scores = _score_batch(predictions, target[:, :used_steps], metrics, lpips_reason is None, lpips_weights)
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


def _score_batch(predictions, targets, metrics, with_lpips: bool, lpips_weights) -> dict:
    """predictions, targets: (B, S, 3, H, W) -> {("t+k", metric): (B,) scores}."""
    functions = {"psnr": M.psnr, "ssim": M.ssim, "ms_ssim": M.ms_ssim}
    scores = {}
    for index in range(predictions.shape[1]):
        prediction = predictions[:, index].float().clamp(0, 1)
        target = targets[:, index].float()
        for metric in metrics:
            if metric == "lpips":
                if with_lpips:
                    scores[(step_name(index + 1), metric)] = M.lpips(prediction, target, lpips_weights)
                continue
            scores[(step_name(index + 1), metric)] = functions[metric](prediction, target)
    return scores
