"""One dataset sample in the form the figure functions take: batched, and through a model."""
from __future__ import annotations

import torch


def as_batch(sample: dict) -> dict:
    """A dataset sample's tensors with a leading batch dimension of 1 (what the figure functions take)."""
    return {key: value.unsqueeze(0) for key, value in sample.items() if isinstance(value, torch.Tensor)}


def forward_sample(model, sample: dict, t: float | None = None) -> dict:
    """The model's full output dict (batch 1) for a dataset sample, at its first target time by default."""
    target_time = float(sample["target_times"][0]) if t is None else t
    with torch.no_grad():
        output = model(sample["context"].unsqueeze(0), target_time, target=sample["target"][:1])
    return {key: value.detach() if isinstance(value, torch.Tensor) else value for key, value in output.items()}


__all__ = ["as_batch", "forward_sample"]
