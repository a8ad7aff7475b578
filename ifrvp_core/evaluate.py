"""The evaluation loop: score step functions on a test set, every future step, both forms.

`evaluate` runs step functions (`ifrvp_core.rollout`: models via `model_step_fn`, the baselines
`copy_last` and `dis_extrapolation`) recursively over a dataset or a protocol's test set
(`ifrvp_core.protocols`) and returns `EvaluationResults` (`ifrvp_core.results`): a dict
``{method: {step: {metric: value or None}}}`` with frame t+k alone ("t+k") and the running mean
over t+1..t+k ("t+1..t+k", what DMVFN's scripts print), per-sample scores and ``meta``.
`evaluate_model` is the results contract's evaluation (methods ``model``, ``copy_last``,
``dis_extrapolation``), which `ifrvp evaluate` and notebook 05 both call.

The names of those three modules stay importable from here, where the trainer, the notebooks
and the workbook import them.

    >>> from ifrvp_core.evaluate import evaluate_model, format_table, save_results
    >>> results = evaluate_model(model, "cityscapes", root="data/cityscapes", checkpoint="best.pt")
    >>> print(format_table(results)); save_results(results, "reports/eval.json")
"""
from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np
import torch

from ifrvp_core import metrics as M
from ifrvp_core.data.io import DataError
from ifrvp_core.protocols import DEFAULT_METRICS, PROTOCOLS, PUBLISHED, Protocol, get_protocol, list_protocols, published_rows
from ifrvp_core.results import (
    METRIC_LABELS,
    RESULTS_FORMAT,
    RESULTS_META_KEYS,
    RUNNING_MEAN_METRICS,
    STEP_FORMS,
    EvaluationResults,
    format_table,
    frame_steps,
    is_running_step,
    load_results,
    results_protocol,
    running_means,
    running_step_name,
    running_steps,
    save_results,
    step_name,
    step_number,
)
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
    "METRIC_LABELS",
    "MODEL_KEY",
    "PROTOCOLS",
    "PUBLISHED",
    "RESULTS_FORMAT",
    "RESULTS_META_KEYS",
    "RUNNING_MEAN_METRICS",
    "STEP_FORMS",
    "ModelStep",
    "Protocol",
    "StepFn",
    "copy_last",
    "dis_extrapolation",
    "evaluate",
    "evaluate_model",
    "format_table",
    "frame_steps",
    "get_protocol",
    "is_running_step",
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
    "step_name",
    "step_number",
]

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
