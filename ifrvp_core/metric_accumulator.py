"""`MetricAccumulator`: per-(step, metric) means of per-sample scores over batches and ranks.

It sums per-sample scores per (step, metric) over batches and, when ``torch.distributed`` is
initialised (and ``across_ranks``, the default), all-reduces sums and counts across ranks before
taking means. Also importable from
`ifrvp_core.metrics`.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["MetricAccumulator"]


class MetricAccumulator:
    """Per-step, per-metric running sums and counts of per-sample scores; DDP-aware means.

    >>> acc = MetricAccumulator()
    >>> acc.update("t+1", "psnr", torch.tensor([30.0, 32.0]))
    >>> acc.compute()
    {'t+1': {'psnr': 31.0}}

    NaN scores (e.g. EPE of a sample without valid pixels) are not counted; ``inf`` (PSNR of an
    exact copy) is kept, so a mean can be ``inf``, as scikit-image would report it. Steps and
    metrics are labels here (no step names are parsed): means come in the order they were first
    scored, rank 0's first, then keys only other ranks saw, the same order on every rank.

    Args:
        across_ranks: all-reduce over the initialised process group (training's validation).
            False: this process's scores only, e.g. when every rank already holds all of them
            (`ifrvp_core.evaluate` gathers per-sample scores and sums them in sample order).
    """

    def __init__(self, across_ranks: bool = True):
        self.across_ranks = bool(across_ranks)
        self._sums: dict[tuple[str, str], float] = {}
        self._counts: dict[tuple[str, str], int] = {}

    def update(self, step: str, metric: str, values) -> None:
        """Add per-sample scores: `values` is a (B,) tensor, a sequence, or a number."""
        values = torch.as_tensor(values, dtype=torch.float64).detach().flatten().cpu()
        values = values[~torch.isnan(values)]
        key = (str(step), str(metric))
        self._sums[key] = self._sums.get(key, 0.0) + float(values.sum())
        self._counts[key] = self._counts.get(key, 0) + int(values.numel())

    def reset(self) -> None:
        self._sums.clear()
        self._counts.clear()

    def _reduced(self) -> tuple[dict, dict]:
        if not self.across_ranks or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return dict(self._sums), dict(self._counts)
        # Ranks can have seen different (step, metric) keys (e.g. an empty shard): agree on the union,
        # in rank order (each rank's keys in the order it first scored them).
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, list(self._sums))
        keys = list(dict.fromkeys(tuple(key) for keys in gathered for key in keys))
        device = torch.device("cpu")
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        packed = torch.tensor(
            [[self._sums.get(key, 0.0), float(self._counts.get(key, 0))] for key in keys],
            dtype=torch.float64, device=device,
        ).reshape(-1, 2)
        dist.all_reduce(packed, op=dist.ReduceOp.SUM)
        packed = packed.cpu()
        sums = {key: float(packed[i, 0]) for i, key in enumerate(keys)}
        counts = {key: int(round(float(packed[i, 1]))) for i, key in enumerate(keys)}
        return sums, counts

    def counts(self) -> dict[str, dict[str, int]]:
        """{step: {metric: number of samples}} (all ranks together)."""
        _, counts = self._reduced()
        out: dict[str, dict[str, int]] = {}
        for (step, metric), count in counts.items():
            out.setdefault(step, {})[metric] = count
        return out

    def compute(self) -> dict[str, dict[str, float | None]]:
        """{step: {metric: mean over all samples of all ranks}}; None where nothing was counted.

        Collective under DDP: every rank must call it.
        """
        sums, counts = self._reduced()
        out: dict[str, dict[str, float | None]] = {}
        for key in sums:
            step, metric = key
            out.setdefault(step, {})[metric] = sums[key] / counts[key] if counts[key] else None
        return out

