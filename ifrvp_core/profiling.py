"""Model cost: parameters, MACs and forward latency (shared by notebook 02 and benchmarks/model_speed.py)."""
from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: torch.nn.Module, frames: torch.Tensor, t: float = 2.0) -> int:
    """Multiply-accumulates of one forward pass on `frames` (B,K,3,H,W).

    Counted with torch's FlopCounterMode (MACs = FLOPs / 2); convolutions and matmuls only,
    grid_sample and elementwise ops are not counted (as in the published IFRNet table).
    """
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(frames, t)
    return counter.get_total_flops() // 2


def time_call(function, repeats: int = 5, warmup: int = 1, sync=None) -> list[float]:
    """Seconds per `function()` call, `repeats` timed calls after `warmup` untimed ones (`sync()` after each)."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        function()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        sync()
        times.append(time.perf_counter() - start)
    return times


def time_predict(model, frames: torch.Tensor, repeats: int = 5, warmup: int = 1, t: float = 2.0) -> list[float]:
    """Seconds per `model.predict(frames, t)` call, `repeats` timed calls after `warmup` untimed ones."""
    return time_call(lambda: model.predict(frames, t), repeats, warmup, torch.cuda.synchronize if frames.is_cuda else None)


def median_latency_ms(model, frames: torch.Tensor, repeats: int = 5, warmup: int = 1) -> float:
    return 1000.0 * statistics.median(time_predict(model, frames, repeats, warmup))


__all__ = ["count_macs", "count_parameters", "median_latency_ms", "time_call", "time_predict"]
