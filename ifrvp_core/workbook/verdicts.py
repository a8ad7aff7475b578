"""Whether the trained model beats a baseline, and the words the reports say it in.

A `beats` dict is {"psnr": bool, "ssim": bool}: whether the model scores higher than the baseline
on the same samples (`beats_baselines` of training's summary.json for the validation samples,
`model_beats_<baseline>_t1` of notebook 05's headline.json for the test samples at t+1).
"""
from __future__ import annotations

from ifrvp_core.results import VERDICT_METRICS, beats_baseline

# The baselines the headlines compare the model with, in the reports' words (key of
# `model_beats_<key>_t1` in headline.json).
BASELINE_LABELS = (
    ("copy_last", "copy-last-frame"),
    ("dis_extrapolation", "DIS flow extrapolation"),
    ("prior_only", "its untrained twin (prior_only, the motion prior alone)"),
)


def beats_on_every_metric(beats: dict | None) -> bool:
    return bool(beats) and all(beats.values())


def verdict_cell(beats: dict | None) -> str:
    """A table's "model beats it" cell: "yes" (higher PSNR and SSIM), "PSNR only" or "NO"."""
    if beats_on_every_metric(beats):
        return "yes"
    return "PSNR only" if (beats or {}).get("psnr") else "NO"


def verdict_verb(beats: dict | None) -> str:
    """The verb of "The trained model ... the baseline": "beats" (higher PSNR and SSIM) or "does NOT beat"."""
    return "beats" if beats_on_every_metric(beats) else "does NOT beat"


__all__ = ["BASELINE_LABELS", "VERDICT_METRICS", "beats_baseline", "beats_on_every_metric", "verdict_cell", "verdict_verb"]
