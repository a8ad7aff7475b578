"""Where the room is on the synthetic test windows: the prior against flows that know more (t+1 PSNR).

    python scripts/synthetic_headroom.py workbook_runs/quick/data/synthetic

For every third window of each test clip (frames i-1, i -> i+1; the windows `ifrvp evaluate
--dataset synthetic --steps 1` scores), the prior (`prior_only`), the newest frame warped alone
along the DIS prior, along the DIS prior sampled where the target pixel came from (the fixed point
`F(p) = B(p + F(p))`, 5 iterations), along the exact velocity, and along the exact flow from the
target (an oracle that knows the future). Exact flows come from each clip's scene.
"""
from __future__ import annotations

import argparse
import glob
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from ifrvp_core.data.io import read_image  # noqa: E402
from ifrvp_core.data.synthetic import load_scene, synthetic_flow  # noqa: E402
from ifrvp_core.metrics import psnr  # noqa: E402
from ifrvp_core.motion_prior import dis_flow_batch, prior_prediction  # noqa: E402
from ifrvp_core.warp import backward_warp  # noqa: E402


def as_flow(flow) -> torch.Tensor:
    return torch.from_numpy(flow).permute(2, 0, 1)[None]


def fixed_point(flow: torch.Tensor, iterations: int = 5) -> torch.Tensor:
    sampled = flow.clone()
    for _ in range(iterations):
        sampled = backward_warp(flow, sampled)
    return sampled


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_root", help="a synthetic set (its test/ split is read)")
    args = parser.parse_args(argv)
    clips = sorted(glob.glob(str(Path(args.data_root) / "test" / "clip_*")))
    if not clips:
        raise SystemExit(f"no test clips under {args.data_root}/test")
    scores: dict[str, list] = {}
    for clip in clips:
        scene = load_scene(clip)
        frames = [torch.from_numpy(read_image(path)).permute(2, 0, 1).float()[None] / 255 for path in sorted(glob.glob(clip + "/*.png"))]
        for i in range(1, len(frames) - 1, 3):
            context, target = torch.stack([frames[i - 1], frames[i]], 1), frames[i + 1]
            backward = dis_flow_batch(context[:, 1], context[:, 0])
            exact = as_flow(synthetic_flow(scene, i, i - 1)[0])
            for name, prediction in (
                ("prior (prior_only)", prior_prediction(context, 2.0)),
                ("newest frame along the DIS prior", backward_warp(context[:, 1], backward)),
                ("newest frame along the DIS prior, fixed point", backward_warp(context[:, 1], fixed_point(backward))),
                ("newest frame along the exact velocity", backward_warp(context[:, 1], exact)),
                ("newest frame along the exact flow from the target", backward_warp(context[:, 1], as_flow(synthetic_flow(scene, i + 1, i)[0]))),
            ):
                scores.setdefault(name, []).append(psnr(prediction.clamp(0, 1), target).item())
    means = {name: statistics.fmean(values) for name, values in scores.items()}
    for name, value in means.items():
        print(f"{name:52s} {value:.3f} dB  ({len(scores[name])} windows)")
    return means


if __name__ == "__main__":
    main()
