"""Where a model's t+1 error is, and where training removed some of it, against its untrained twin.

    python scripts/error_regions.py CHECKPOINT CLIP [CLIP ...] [--shift 1.0]

For every window of each clip (a frames folder or a video, read as `--dataset frames` with all of
it as the test part, two context frames, the next frame as target), the squared error of
`prior_only` (the untrained twin, `motion_prior.prior_prediction`) and of the model (CHECKPOINT: a
file or a packaged model's name) is split into three regions of the target frame:
- `border`: pixels the prior fetches from outside the newest frame (content entering the view);
- `boundary`: motion boundaries, where the prior's shift (`models.ifrnet.prior_shift`, newest
  frame) is longer than `--shift` pixels: the constant-velocity flow is sampled from another object;
- `rest`: everything else, where the motion is locally uniform.
Per region it prints the share of the pixels, the share of prior_only's error, and how much of
prior_only's error there the model removed (%); then t+1 PSNR of both and the model's mean flow
change from the prior (px), older-frame blend weight and |residual|. The errors are means over
windows of the per-window mean squared error, so the shares add up to 1.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from ifrvp_core.checkpoint import load_model
from ifrvp_core.data import build_dataset, collate
from ifrvp_core.metrics import psnr
from ifrvp_core.models.ifrnet import prior_shift
from ifrvp_core.motion_prior import constant_velocity_prior, prior_prediction

REGIONS = ("border", "boundary", "rest")


def region_masks(prior_flow: torch.Tensor, shift_threshold: float) -> dict[str, torch.Tensor]:
    """(1, 4, H, W) prior of a two-frame window -> {region: (H, W) bool}; the three partition the frame."""
    newest = prior_flow[0, 2:]
    height, width = newest.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(height, dtype=newest.dtype), torch.arange(width, dtype=newest.dtype), indexing="ij")
    source_x, source_y = xs + newest[0], ys + newest[1]
    # outside by more than half a pixel: flow noise at the frame's edge does not make its rows a border
    border = (source_x < -0.5) | (source_x > width - 0.5) | (source_y < -0.5) | (source_y > height - 0.5)
    boundary = (prior_shift(prior_flow)[0, 2:].norm(dim=0) > shift_threshold) & ~border
    return {"border": border, "boundary": boundary, "rest": ~border & ~boundary}


@torch.no_grad()
def clip_error_regions(model, root: str, shift_threshold: float = 1.0) -> dict:
    """The figures above for one clip: {"windows", "<region> pixels", "<region> prior error",
    "<region> removed (%)", "prior_only psnr", "model psnr", "flow change (px)", "older weight", "|residual|"}."""
    dataset = build_dataset("frames", root, "test", teacher_flow=False, test_fraction=1.0)
    sums: dict[str, list] = {}

    def add(name, value):
        sums.setdefault(name, []).append(float(value))

    for index in range(len(dataset)):
        sample = collate([dataset[index]])
        context, target = sample["context"], sample["target"][:, 0]
        prior_flow = constant_velocity_prior(context, 2.0)
        twin = prior_prediction(context, 2.0, prior_flow)
        output = model(context, 2.0, prior_flow=prior_flow)
        twin_error = ((twin - target) ** 2).mean(dim=1)[0]
        model_error = ((output["prediction"] - target) ** 2).mean(dim=1)[0]
        for region, mask in region_masks(prior_flow, shift_threshold).items():
            add(f"{region} pixels", mask.float().mean())
            add(f"{region} twin", (twin_error * mask).sum() / twin_error.numel())
            add(f"{region} model", (model_error * mask).sum() / model_error.numel())
        add("prior_only psnr", psnr(twin, target).mean())
        add("model psnr", psnr(output["prediction"], target).mean())
        add("flow change (px)", (output["flows"][0] - prior_flow).abs().mean())
        add("older weight", output["mask"][0, 0].mean())
        add("|residual|", output["residual"].abs().mean())
    mean = {name: float(np.mean(values)) for name, values in sums.items()}
    total = sum(mean[f"{region} twin"] for region in REGIONS)
    result = {"windows": len(dataset)}
    for region in REGIONS:
        twin, model_error = mean.pop(f"{region} twin"), mean.pop(f"{region} model")
        result[f"{region} pixels"] = mean.pop(f"{region} pixels")
        result[f"{region} prior error"] = twin / total if total > 0 else 0.0
        result[f"{region} removed (%)"] = 100.0 * (twin - model_error) / twin if twin > 0 else 0.0
    return {**result, **mean}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a checkpoint file or a packaged model's name (ifrvp-s-real)")
    parser.add_argument("clips", nargs="+", help="frames folders or videos")
    parser.add_argument("--shift", type=float, default=1.0, help="prior shift (px) above which a pixel is a motion boundary (default 1)")
    args = parser.parse_args(argv)
    if args.shift < 0:
        parser.error(f"--shift must be >= 0, got {args.shift}")
    model = load_model(args.checkpoint).eval()
    if model.motion_prior != "dis":
        parser.error(f"{args.checkpoint} has no DIS motion prior (motion_prior={model.motion_prior!r}): there is no untrained twin to compare with")
    for clip in args.clips:
        result = clip_error_regions(model, clip, args.shift)
        print(f"{clip}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
