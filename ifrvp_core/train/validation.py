"""Validation during training: the model and, for extrapolation, the baselines on the same samples.

A model that collapses to copying its last context frame, or that learns nothing beyond its
motion prior, shows it here: the baselines copy-last, DIS extrapolation and prior_only (the
untrained twin) are scored on the same validation windows (once: they do not change), so
`log.jsonl`, TensorBoard and `summary.json` (`baselines`, `beats_baselines`) put the model next to them.
"""
from __future__ import annotations

import math

import torch

from ifrvp_core.evaluate import standard_methods
from ifrvp_core.metrics import MetricAccumulator, psnr, ssim
from ifrvp_core.train.distributed import Dist

STEP = "t+1"  # validation scores the first predicted frame only
METRICS = ("psnr", "ssim")


class Validation:
    """PSNR/SSIM of t+1 over the first `samples` windows of `dataset`, split across ranks and averaged.

    `baselines` is None until the first call scores them, then {baseline: {"psnr", "ssim"}}.
    """

    def __init__(self, dataset, samples: int, batch_size: int, task: str, env: Dist):
        self.dataset, self.samples, self.batch_size, self.env = dataset, samples, batch_size, env
        self.with_baselines = task == "extrapolate"
        self.baselines: dict | None = None

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module) -> dict:
        """{"psnr", "ssim", "samples", then `<baseline>_psnr`, `<baseline>_ssim` per baseline}.

        Collective under DDP: every rank must call it. `model` is put in eval mode and back in train mode.
        """
        model.eval()
        context_frames = int(getattr(model, "context_frames", 2))  # prior_only: the twin of this model
        prior = getattr(model, "motion_prior", "none")
        baselines = (standard_methods(model=None, context_frames=context_frames, motion_prior=prior if prior != "none" else None)
                     if self.with_baselines and self.baselines is None else {})
        scores = MetricAccumulator()
        count = min(len(self.dataset), self.samples)
        indices = list(range(self.env.rank, count, self.env.world_size))
        for start in range(0, len(indices), self.batch_size):
            samples = [self.dataset[i] for i in indices[start : start + self.batch_size]]
            frames = torch.stack([s["context"] for s in samples]).to(self.env.device)
            target = torch.stack([s["target"][0] for s in samples]).to(self.env.device)
            times = torch.stack([s["target_times"][0] for s in samples]).to(self.env.device)
            scores.update(STEP, "samples", torch.ones(len(samples)))  # the count (a NaN score is not counted in its metric)
            add_scores(scores, "", model(frames, times)["prediction"], target)
            for name, baseline in baselines.items():
                add_scores(scores, f"{name}_", baseline(frames), target)
        model.train()
        means = sample_means(scores, [*METRICS, *(f"{name}_{metric}" for name in baselines for metric in METRICS)])
        if self.baselines is None:
            self.baselines = {name: {metric: means[f"{name}_{metric}"] for metric in METRICS} for name in baselines}
        metrics = {"psnr": means["psnr"], "ssim": means["ssim"], "samples": means["samples"]}
        for name, values in self.baselines.items():
            metrics[f"{name}_psnr"], metrics[f"{name}_ssim"] = values["psnr"], values["ssim"]
        return metrics


def add_scores(scores: MetricAccumulator, prefix: str, prediction: torch.Tensor, target: torch.Tensor) -> None:
    """Per-sample PSNR and SSIM of `prediction` (B,3,H,W), clamped to [0, 1], as `<prefix>psnr`, `<prefix>ssim`."""
    prediction = prediction.float().clamp(0, 1)
    scores.update(STEP, f"{prefix}psnr", psnr(prediction, target))
    scores.update(STEP, f"{prefix}ssim", ssim(prediction, target))


def sample_means(scores: MetricAccumulator, names: list[str]) -> dict:
    """{name: mean over every validated sample of every rank}, and "samples": how many were validated.

    A metric that is NaN for any sample (a diverged model) has a NaN mean, and so does every
    metric when no sample was validated: such a model is never the best one.
    """
    means, counts = scores.compute().get(STEP, {}), scores.counts().get(STEP, {})
    samples = counts.get("samples", 0)
    result = {name: means[name] if samples and counts.get(name) == samples else math.nan for name in names}
    result["samples"] = samples
    return result
