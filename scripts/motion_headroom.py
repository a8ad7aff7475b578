"""How much a flow-based predictor could gain over the motion prior, and what training crops see.

    python scripts/motion_headroom.py CLIP [CLIP ...] [--crop 128]

For every window (two context frames, the next frame as target) of each clip (a frames folder or
a video, read as `--dataset frames` with all of it as the test part), t+1 PSNR of:
- `prior`: the untrained motion-prior model's prediction (`motion_prior.prior_prediction`);
- `fixed point prior`: the same with the constant-velocity flow sampled where each target pixel
  came from (F = B(p + F), five iterations) instead of at the target pixel;
- `fixed point prior, forward-backward flow`: the same with the newest frame's velocity averaged
  from DIS in both directions (backward, and forward warped and negated), a less noisy velocity;
- `oracle flow`: the newest frame warped by DIS from the *real* target, i.e. what a perfect
  backward flow at the DIS level of detail gives: the room a learned flow correction has;
- `|oracle - fixed point| (px)`: how far that oracle flow is from the best constant-velocity
  flow, and `its camera part (px)`: the length of its per-window median (a global change of
  velocity); the rest is local motion that changes between frames, which two context frames
  cannot show.
Then, on one random crop per window (`--crop`), the same oracle and prior computed on the crop
against the full frame, scored on the crop's interior, and the mean DIS flow magnitude of each:
a training crop sees less motion, and a worse flow, than the full frame it came from.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from ifrvp_core.data import build_dataset, collate
from ifrvp_core.metrics import psnr
from ifrvp_core.motion_prior import dis_flow_batch, prior_prediction
from ifrvp_core.warp import backward_warp


def fixed_point_prior(context: torch.Tensor, iterations: int = 5, forward_backward: bool = False) -> torch.Tensor:
    """(1, 2, 3, H, W) -> (1, 4, H, W) constant-velocity flows sampled where the target pixel came from.

    `forward_backward`: the newest frame's velocity is the mean of DIS newest -> older and of DIS
    older -> newest warped to the newest frame and negated.
    """
    backward = dis_flow_batch(context[:, 1], context[:, 0])
    if forward_backward:
        forward = dis_flow_batch(context[:, 0], context[:, 1])
        backward = 0.5 * (backward - backward_warp(forward, backward))
    flow = backward.clone()
    for _ in range(iterations):
        flow = backward_warp(backward, flow)
    return torch.cat([2 * flow, flow], dim=1)


def clip_headroom(root: str, crop: int, rng: np.random.Generator) -> dict:
    dataset = build_dataset("frames", root, "test", teacher_flow=False, test_fraction=1.0)
    scores: dict[str, list] = {}

    def add(name, prediction, target):
        scores.setdefault(name, []).append(psnr(prediction.clamp(0, 1), target).mean().item())

    for index in range(len(dataset)):
        sample = collate([dataset[index]])
        context, target = sample["context"], sample["target"][:, 0]
        add("prior", prior_prediction(context, 2.0), target)
        fixed_point = fixed_point_prior(context)
        add("fixed point prior", prior_prediction(context, 2.0, fixed_point), target)
        add("fixed point prior, forward-backward flow",
            prior_prediction(context, 2.0, fixed_point_prior(context, forward_backward=True)), target)
        oracle = dis_flow_batch(target, context[:, 1])
        add("oracle flow", backward_warp(context[:, 1], oracle), target)
        change = oracle - fixed_point[:, 2:]  # what the velocity did between the context and the target
        camera = change.flatten(2).median(dim=2).values
        scores.setdefault("|oracle - fixed point| (px)", []).append(change.norm(dim=1).mean().item())
        scores.setdefault("its camera part (px)", []).append(camera.norm(dim=1).mean().item())
        height, width = target.shape[-2:]
        if height < crop or width < crop:
            continue
        top, left = int(rng.integers(0, height - crop + 1)), int(rng.integers(0, width - crop + 1))
        cut = lambda image: image[..., top : top + crop, left : left + crop]  # noqa: E731
        inner = lambda image: image[..., 16:-16, 16:-16]  # noqa: E731  (pixels whose source may lie outside the crop)
        full_flow = cut(dis_flow_batch(target, context[:, 1]))
        crop_flow = dis_flow_batch(cut(target), cut(context[:, 1]))
        add("crop: oracle, flow on the full frame", inner(backward_warp(cut(context[:, 1]), full_flow)), inner(cut(target)))
        add("crop: oracle, flow on the crop", inner(backward_warp(cut(context[:, 1]), crop_flow)), inner(cut(target)))
        add("crop: prior on the full frame", inner(cut(prior_prediction(context, 2.0))), inner(cut(target)))
        add("crop: prior on the crop", inner(prior_prediction(cut(context), 2.0)), inner(cut(target)))
        scores.setdefault("crop: mean |flow| full frame (px)", []).append(full_flow.norm(dim=1).mean().item())
        scores.setdefault("crop: mean |flow| on the crop (px)", []).append(crop_flow.norm(dim=1).mean().item())
    return {"windows": len(dataset), **{name: float(np.mean(values)) for name, values in scores.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="+", help="frames folders or videos")
    parser.add_argument("--crop", type=int, default=128, help="training crop size to compare with (default 128)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    for clip in args.clips:
        result = clip_headroom(clip, args.crop, rng)
        print(f"{clip}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
