"""The evaluation loop: score step functions on a test set, every future step, both forms.

`evaluate` runs step functions (`ifrvp_core.rollout`: models via `model_step_fn`, the baselines
`copy_last`, `dis_extrapolation`, `prior_only`) recursively over a dataset or a protocol's test set
(`ifrvp_core.protocols`) and returns `EvaluationResults` (`ifrvp_core.results`): a dict
``{method: {step: {metric: value or None}}}`` with frame t+k alone ("t+k") and the running mean
over t+1..t+k ("t+1..t+k", what DMVFN's scripts print), per-sample scores and ``meta``.
`evaluate_model` is the results contract's evaluation (methods ``model``, ``copy_last``,
``dis_extrapolation``, ``prior_only``), which `ifrvp evaluate` and notebook 05 both call.

The names of those three modules stay importable from here, where the trainer, the notebooks
and the workbook import them.

    >>> from ifrvp_core.evaluate import evaluate_model, format_table, save_results
    >>> results = evaluate_model(model, "cityscapes", root="data/cityscapes", checkpoint="best.pt")
    >>> print(format_table(results)); save_results(results, "reports/eval.json")
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import chain
from typing import Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from ifrvp_core import metrics as M
from ifrvp_core.data import collate
from ifrvp_core.data.io import DataError
from ifrvp_core.eval_ranks import gather, rank_and_world, shard
from ifrvp_core.metric_accumulator import MetricAccumulator
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
    FirstStepPriors,
    ModelStep,
    StepFn,
    copy_last,
    dis_extrapolation,
    model_step_fn,
    resolve_device,
    rollout,
    standard_methods,
)
from ifrvp_core.sample_images import SampleImages

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

# Future steps scored when neither the caller nor a protocol says how many.
DEFAULT_STEPS = 5


def evaluate(
    methods: Mapping[str, StepFn],
    dataset_or_protocol,
    steps: int | None = DEFAULT_STEPS,
    batch_size: int = 4,
    device=None,
    num_workers: int = 0,
    max_samples: int | None = None,
    progress: bool = True,
    root=None,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    lpips_weights=None,
    bgr_like_published: bool = False,
    save_images=None,
    distributed: bool | None = None,
    prefetch_priors: bool = True,
) -> EvaluationResults:
    """Score step functions on a test set, each future step separately and as running means.

    Under torchrun (an initialised process group) every rank scores every R-th sample
    (`ifrvp_core.eval_ranks.shard`) and the per-sample scores are gathered, so every rank returns
    the results of the whole set, equal to one process's: the means are summed over the
    per-sample scores in sample order on every rank, whatever the ranks (docs/evaluation.md).

    Args:
        methods: {name: step function} (`ifrvp_core.rollout`).
        dataset_or_protocol: a dataset of samples (docs/architecture.md), a `Protocol` or a
            protocol name (then built from `root` with enough context for every method).
        steps: future frames to predict recursively and score (capped at what the protocol scores,
            with a warning, and at what samples hold); None: the protocol's, 5 for a dataset.
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
        save_images: a new or empty folder: write every scored frame as PNG, the target and the
            context too (`ifrvp_core.sample_images` gives the layout); the scores do not change.
            Under torchrun each rank writes its own samples and rank 0 the ``images.csv`` index.
        distributed: None: shard over the initialised process group if there is one; False:
            score every sample in this process; True: shard (a group must be initialised).
        prefetch_priors: compute the motion prior of the next batch's first step on a background
            thread while the methods run on this batch (`FirstStepPriors`; one prior per batch
            serves a model and its prior_only twin, both calls and flows). The scores are the
            same either way, bit for bit; later rollout steps compute theirs after the predictions.

    Returns:
        EvaluationResults ``{method: {"t+1".."t+S", "t+1..t+1".."t+1..t+S": {metric: mean or
        None}}}`` with per-sample scores of both forms and ``meta`` (`RESULTS_META_KEYS`;
        variant, checkpoint, scale_factor and written_by are None: `evaluate_model` fills them).
    """
    _check_arguments(methods, metrics, steps)
    rank, world_size = rank_and_world(distributed)
    device = resolve_device(device)
    protocol, steps = _protocol_and_steps(dataset_or_protocol, steps)
    needed_context = max(int(getattr(fn, "context_frames", 2)) for fn in methods.values())
    dataset = _test_set(dataset_or_protocol, protocol, root, needed_context, steps)
    indices = _sample_indices(dataset, max_samples)
    own = shard(indices, rank, world_size)
    images = None if save_images is None else SampleImages(save_images, methods, len(indices), world_size)
    for fn in methods.values():
        if hasattr(fn, "to"):
            fn.to(device)
    lpips_reason = _lpips_reason(metrics, lpips_weights)
    scoring = _FrameScoring(metrics, lpips_reason is None, lpips_weights, bgr_like_published)
    loader = _loader(dataset, own, batch_size, num_workers)
    scores = _score_batches(loader, own, methods, steps, protocol, device, scoring, progress and rank == 0, images, rank,
                            world_size, prefetch_priors)
    results = scores.results(world_size)
    if images is not None and rank == 0:
        images.write_index(results.sample_indices, results.sample_names)
    if lpips_reason is not None:
        results.unavailable["lpips"] = lpips_reason
    results.protocol = protocol.name if protocol is not None else None
    results.steps = scores.steps
    results.meta = _meta(results, protocol, dataset, root, max_samples, metrics, bgr_like_published)
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
    precision: str = "fp32",
    **options,
) -> EvaluationResults:
    """The contract's evaluation: a model as ``model`` and the baselines as ``copy_last``,
    ``dis_extrapolation`` and ``prior_only``, with the variant and checkpoint in ``results.meta``.

    `ifrvp evaluate` and notebook 05 both call this, so their results.json files agree.

    Args:
        model: the model (``model_name`` is recorded as the variant), or None for baselines only.
        dataset_or_protocol: as `evaluate`.
        checkpoint: the file the model came from (recorded; None for none).
        baselines: score copy_last, dis_extrapolation and prior_only (the untrained twin) too.
        scale_factor: the model's internal scale factor.
        written_by: who ran it, for ``meta`` (e.g. "ifrvp evaluate").
        steps: future steps (None: the protocol's, 5 for a plain dataset).
        precision: the model's precision, "fp32", "bf16" or "fp16" (autocast; recorded in ``meta``).
        options: further `evaluate` keywords (root, batch_size, device, max_samples, metrics,
            lpips_weights, bgr_like_published, progress, num_workers, save_images, distributed).
    """
    methods = standard_methods(model, baselines, scale_factor, precision=precision)
    results = evaluate(methods, dataset_or_protocol, steps=steps, **options)
    results.meta.update(
        written_by=written_by,
        variant=None if model is None else getattr(model, "model_name", type(model).__name__),
        checkpoint=None if checkpoint is None else str(checkpoint),
        scale_factor=None if model is None else float(scale_factor),
        precision=None if model is None else precision,
    )
    return results


def _check_arguments(methods: Mapping, metrics: tuple[str, ...], steps: int | None) -> None:
    if not methods:
        raise ValueError("methods is empty: pass at least one {name: step function}")
    unknown = [m for m in metrics if m not in M.IMAGE_METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {', '.join(M.IMAGE_METRICS)}")
    if "meta" in methods:
        raise ValueError("'meta' cannot be a method name: it is the run description in results.json")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")


def _protocol_and_steps(dataset_or_protocol, steps: int | None) -> tuple[Protocol | None, int]:
    """The protocol (None for a dataset) and the future steps to score, resolved once.

    None steps are the protocol's (`DEFAULT_STEPS` for a dataset); more than a protocol scores
    are reduced to its number, with a warning.
    """
    if not isinstance(dataset_or_protocol, (str, Protocol)):
        return None, DEFAULT_STEPS if steps is None else steps
    protocol = get_protocol(dataset_or_protocol)
    if steps is None:
        return protocol, protocol.steps
    if steps > protocol.steps:
        warnings.warn(f"protocol {protocol.name!r} scores {protocol.steps} future frame(s); steps={steps} reduced to {protocol.steps}")
    return protocol, min(steps, protocol.steps)


def _test_set(dataset_or_protocol, protocol: Protocol | None, root, context_frames: int, steps: int):
    """The dataset itself, or the protocol's test set with enough context for every method."""
    if protocol is not None:
        return protocol.build_dataset(root, context_frames=max(context_frames, protocol.context_frames), steps=steps)
    if not hasattr(dataset_or_protocol, "__getitem__") or not hasattr(dataset_or_protocol, "__len__"):
        raise ValueError(
            f"dataset_or_protocol must be a dataset, a Protocol or one of {list_protocols()}, got {type(dataset_or_protocol).__name__}"
        )
    return dataset_or_protocol


def _sample_indices(dataset, max_samples: int | None) -> list[int]:
    """The indices of the samples an evaluation scores: the first `max_samples` (all when None)."""
    total = len(dataset)
    if total == 0:
        raise ValueError("the dataset has no samples")
    return list(range(total if max_samples is None else min(total, int(max_samples))))


def _loader(dataset, indices: list[int], batch_size: int, num_workers: int) -> DataLoader:
    """A DataLoader over the samples `indices` of `dataset`, in that order."""
    subset = dataset if indices == list(range(len(dataset))) else Subset(dataset, indices)
    return DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate)


def _lpips_reason(metrics: tuple[str, ...], lpips_weights) -> str | None:
    """Why LPIPS cannot be computed (None when it can, or when it is not asked for)."""
    if "lpips" not in metrics:
        return None
    status = M.lpips_status(lpips_weights)
    return status.reason if status is not None else None


def _refuse_skipped_samples(batch: dict) -> None:
    skipped = sorted({name for names in batch.get("skipped_files", []) for name in names})
    if skipped:  # a dataset built with on_bad_sample="skip": evaluation never scores a replacement silently
        raise DataError(f"evaluation does not skip bad samples; unreadable file(s): {', '.join(skipped)} "
                        "(evaluate a dataset built with on_bad_sample='fail', the default)", skipped[0])


def _checked_steps(batch: dict, steps: int, protocol: Protocol | None) -> int:
    """The steps the samples allow (checked once, on the first batch): at most the future frames
    they hold (a warning when fewer than `steps`), which must be the consecutive t = 2, 3, ...;
    a warning when the frames are not at the protocol's size."""
    _refuse_skipped_samples(batch)
    available = batch["target"].shape[1]
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
    size = tuple(batch["target"].shape[-2:])
    if protocol is not None and protocol.resolution and size != tuple(protocol.resolution):
        warnings.warn(
            f"protocol {protocol.name!r} scores {protocol.resolution[0]}x{protocol.resolution[1]} frames but the data is "
            f"{size[0]}x{size[1]}: numbers are not comparable with published ones"
        )
    return used_steps


def _score_batches(loader, indices: list[int], methods: Mapping[str, StepFn], steps: int, protocol: Protocol | None, device,
                   scoring: _FrameScoring, progress: bool, images: SampleImages | None, rank: int, world_size: int,
                   prefetch_priors: bool = True) -> _Scores:
    """Roll out and score every batch of this rank (samples `indices`); the first batch decides the
    steps the samples allow (`_checked_steps`), rank 0's for every rank (a rank past the sample
    count has no batch; only rank 0 warns). With `prefetch_priors` the first step's motion priors
    of the next batch are computed on a background thread meanwhile (`FirstStepPriors`)."""
    with torch.inference_mode():
        batches = iter(tqdm(loader, desc="evaluate", unit="batch", disable=not progress, leave=False))
        first = next(batches, None)  # None: no sample for this rank (never rank 0: `shard`)
        with warnings.catch_warnings():
            if rank > 0:
                warnings.simplefilter("ignore")  # rank 0 has said it
            own_steps = None if first is None else _checked_steps(first, steps, protocol)
        used_steps = gather(own_steps, world_size)[0]
        scores = _Scores(methods, used_steps, device, scoring, indices, images)
        if first is not None:
            if prefetch_priors:
                for batch, priors in FirstStepPriors(methods).iterate(chain([first], batches)):
                    scores.add(batch, priors)
            else:
                for batch in chain([first], batches):
                    scores.add(batch)
    return scores


class _Scores:
    """Every method's per-sample scores over the batches of one rank's samples, and the means of
    all ranks' scores.

    Args:
        methods: {name: step function}.
        steps: future frames rolled out and scored per sample.
        device: where methods run and metrics are computed.
        scoring: what each predicted frame is scored with.
        indices: the dataset indices of this rank's samples, in the loader's order.
        images: where the scored frames go as PNGs (None: nowhere).
    """

    def __init__(self, methods: Mapping[str, StepFn], steps: int, device, scoring: _FrameScoring, indices: list[int],
                 images: SampleImages | None = None):
        self.methods, self.steps, self.device, self.scoring = methods, steps, device, scoring
        self.indices, self.images = list(indices), images
        self.per_sample: dict = {name: {} for name in methods}
        self.names: list[str] = []

    def add(self, batch: dict, priors: dict | None = None) -> None:
        """Roll out every method on one collated batch (the next samples of `indices`), add its
        scores and write its frames (`images`).

        priors: {prior_spec (K, t): (B, 2K, H, W) prior} of the batch's context (`FirstStepPriors`),
        given to the first step (and flows) of the methods with that ``prior_spec``; None: they compute theirs.
        """
        _refuse_skipped_samples(batch)
        context = batch["context"].to(self.device, non_blocking=True)
        target = batch["target"].to(self.device, non_blocking=True)
        indices = self.indices[len(self.names) : len(self.names) + context.shape[0]]
        names = list(batch.get("name", [f"sample{index}" for index in indices]))
        self.names.extend(names)
        if self.images is not None:
            for position, (index, name) in enumerate(zip(indices, names)):
                self.images.write_inputs(index, name, context[position], target[position, : self.steps])
        for method, step_fn in self.methods.items():
            prior = (priors or {}).get(getattr(step_fn, "prior_spec", None))  # moved to the window's device by the step
            predictions = rollout(step_fn, context, self.steps, first_prior=prior)
            if self.images is not None:
                for position, (index, name) in enumerate(zip(indices, names)):
                    self.images.write_predictions(index, name, method, predictions[position])
            scores = self.scoring.score(predictions, target[:, : self.steps])
            if "gt_flow" in batch and hasattr(step_fn, "flows"):
                scores[(step_name(1), "epe")] = _flow_epe(step_fn, context, batch, self.device, prior)
            for (step, metric), values in scores.items():
                self.per_sample[method].setdefault(step, {}).setdefault(metric, []).append(values.double().cpu().numpy())

    def _gathered(self, world_size: int) -> tuple[list[int], list[str], dict]:
        """(indices, names, {method: {step: {metric: (N,) scores}}}) of every rank, in sample order.

        Collective under torchrun: every rank gathers every rank's scores (`eval_ranks.gather`).
        """
        own = {method: {step: {metric: np.concatenate(parts) for metric, parts in values.items()} for step, values in steps.items()}
               for method, steps in self.per_sample.items()}
        parts = [part for part in gather((self.indices[: len(self.names)], self.names, own), world_size) if part[0]]
        indices = [index for part in parts for index in part[0]]
        names = [name for part in parts for name in part[1]]
        order = np.argsort(np.asarray(indices), kind="stable")
        per_sample: dict = {}
        for method in self.methods:
            keys = dict.fromkeys((step, metric) for part in parts for step, values in part[2][method].items() for metric in values)
            table = per_sample.setdefault(method, {})
            for step, metric in keys:
                try:
                    scores = np.concatenate([part[2][method][step][metric] for part in parts])
                except KeyError:
                    raise RuntimeError(f"{method} {step} {metric}: scored on some ranks' samples only") from None
                table.setdefault(step, {})[metric] = scores[order]
        return [indices[i] for i in order], [names[i] for i in order], per_sample

    def results(self, world_size: int = 1) -> EvaluationResults:
        """Means per "t+k" (the metrics in order, then EPE where scored), running means, per-sample
        scores of both forms, the sample names and indices, of all ranks (collective under torchrun).

        The means are summed over the per-sample scores in sample order (`MetricAccumulator`,
        float64, one sum per step and metric), so they do not depend on the batches or the ranks.
        """
        indices, names, per_sample = self._gathered(world_size)
        results = EvaluationResults()
        for method in self.methods:
            accumulator = MetricAccumulator(across_ranks=False)  # every rank holds every score already
            for step, values in per_sample[method].items():
                for metric, scores in values.items():
                    accumulator.update(step, metric, scores)
            means = accumulator.compute()
            table = {}
            for k in range(1, self.steps + 1):
                row = {metric: means.get(step_name(k), {}).get(metric) for metric in self.scoring.metrics}
                if step_name(k) in means and "epe" in means[step_name(k)]:
                    row["epe"] = means[step_name(k)]["epe"]
                table[step_name(k)] = row
            results[method] = table
        results.per_sample = per_sample
        for method in self.methods:
            means, samples = running_means(results[method], results.per_sample[method])
            results[method].update(means)
            results.per_sample[method].update(samples)
        results.sample_names, results.sample_indices = names, indices
        return results


def _flow_epe(step_fn, context: torch.Tensor, batch: dict, device, prior: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) t+1 EPE of the step function's flows against ``gt_flow`` (on ``gt_valid`` pixels),
    the newest flow fields of the ground truth when the method uses fewer context frames.
    `prior`: the first step's motion prior (B, 2K, H, W) computed ahead, for a step function with ``prior_spec``."""
    flows = step_fn.flows(context) if prior is None else step_fn.flows(context, prior_flow=prior)
    fields = flows.shape[1] // 2
    gt_flow = batch["gt_flow"].to(device)[:, -2 * fields :]
    valid = batch["gt_valid"].to(device)[:, -fields:] if "gt_valid" in batch else None
    return M.epe(flows, gt_flow, valid)


def _meta(results: EvaluationResults, protocol: Protocol | None, dataset, root, max_samples, metrics, bgr_like_published) -> dict:
    """``results.meta`` (`RESULTS_META_KEYS`); who wrote it, the variant, checkpoint and scale
    factor are None here (`evaluate_model` fills them)."""
    dataset_name = getattr(dataset, "name", None)
    return {
        "format": RESULTS_FORMAT,
        "written_by": None,
        "variant": None,
        "checkpoint": None,
        "scale_factor": None,
        "precision": None,
        "protocol": results.protocol,
        "dataset": protocol.dataset if protocol is not None else (dataset_name if isinstance(dataset_name, str) else None),
        "data_root": None if root is None else str(root),
        "steps": results.steps,
        "samples": len(results.sample_names),
        "max_samples": None if max_samples is None else int(max_samples),
        "metrics": list(metrics),
        "bgr_like_published": bool(bgr_like_published),
        "step_forms": dict(STEP_FORMS),
        "unavailable": dict(results.unavailable),
    }


@dataclass(frozen=True)
class _FrameScoring:
    """What each predicted frame is scored with.

    Attributes:
        metrics: image metrics, from `ifrvp_core.metrics.IMAGE_METRICS`.
        with_lpips: False when LPIPS is unavailable (its reason goes to ``results.unavailable``).
        lpips_weights: AlexNet ImageNet weights file (None: torch hub cache).
        bgr_like_published: MS-SSIM and LPIPS see BGR frames (`M.BGR_FLIPPED_METRICS`).
    """

    metrics: tuple[str, ...]
    with_lpips: bool
    lpips_weights: object
    bgr_like_published: bool

    def score(self, predictions: torch.Tensor, targets: torch.Tensor) -> dict:
        """predictions, targets: (B, S, 3, H, W) -> {("t+k", metric): (B,) scores}."""
        functions = {"psnr": M.psnr, "ssim": M.ssim, "ms_ssim": M.ms_ssim}
        scores = {}
        for index in range(predictions.shape[1]):
            rgb_prediction = predictions[:, index].float().clamp(0, 1)
            rgb_target = targets[:, index].float()
            for metric in self.metrics:
                prediction, target = rgb_prediction, rgb_target
                if self.bgr_like_published and metric in M.BGR_FLIPPED_METRICS:
                    prediction, target = M.to_published_channel_order(prediction), M.to_published_channel_order(target)
                if metric == "lpips":
                    if self.with_lpips:
                        scores[(step_name(index + 1), metric)] = M.lpips(prediction, target, self.lpips_weights)
                    continue
                scores[(step_name(index + 1), metric)] = functions[metric](prediction, target)
        return scores
