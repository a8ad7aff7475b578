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


CALIBRATION_UNIT = ("one calibration unit (cu) = the time of a fixed fp32 workload in the same process, threads and "
                    "device: four 3x3 convolutions 64 -> 64 channels (bias, ReLU) on a (1, 64, 64, 128) input, "
                    "fixed weights, no autograd (1.21 GMACs)")


class CalibrationWorkload:
    """The fixed fp32 workload whose time is the calibration unit (`CALIBRATION_UNIT`).

    A latency divided by this workload's time (measured in the same process, with the same threads,
    interleaved with the timed calls) compares across machines better than milliseconds: a machine
    twice as fast, or half as loaded, shortens both. Call it to run the workload once.
    """

    def __init__(self, device="cpu"):
        generator = torch.Generator().manual_seed(0)
        layers = []
        for _ in range(4):
            conv = torch.nn.Conv2d(64, 64, 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2.0 / (9 * 64)) ** 0.5)
                conv.bias.zero_()
            layers += [conv, torch.nn.ReLU()]
        self.network = torch.nn.Sequential(*layers).to(device).eval()
        self.input = torch.rand(1, 64, 64, 128, generator=generator).to(device)
        self.sync = torch.cuda.synchronize if self.input.is_cuda else (lambda: None)

    def __call__(self) -> torch.Tensor:
        with torch.inference_mode():
            out = self.network(self.input)
        self.sync()
        return out


def calibration_unit_s(device="cpu", repeats: int = 11, warmup: int = 2) -> float:
    """Median seconds of `CalibrationWorkload` on `device` (`repeats` timed runs after `warmup`)."""
    workload = CalibrationWorkload(device)
    return statistics.median(time_call(workload, repeats, warmup))


__all__ = ["CALIBRATION_UNIT", "CalibrationWorkload", "calibration_unit_s", "count_macs", "count_parameters",
           "median_latency_ms", "time_call", "time_predict"]
