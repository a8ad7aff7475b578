"""How much --precision bf16 / fp16 changes the scores: `ifrvp evaluate` once per precision, same samples.

    python benchmarks/precision_quality.py --checkpoint runs/x/best.pt                  # synthetic, 8 samples
    python benchmarks/precision_quality.py --checkpoint best.pt --precision fp32,bf16 --max_samples 16 --steps 3

Runs `ifrvp evaluate --dataset DATASET --checkpoint C --max_samples N --precision P` for every
listed precision (the first is the reference, fp32 by default) and prints the model's PSNR and
SSIM per future step and their change against the reference. Scores are deterministic (the same
samples, DIS and weights), so one run per precision is enough; time with model_speed.py instead.
The results files go to --output_dir (default: a temporary folder).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from ifrvp_core.cli import main as ifrvp


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--data_root", default=None)
    parser.add_argument("--precision", default="fp32,bf16", help="comma-separated; the first is the reference")
    parser.add_argument("--max_samples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output_dir", default=None)
    args = parser.parse_args(argv)
    precisions = [part.strip() for part in args.precision.split(",") if part.strip()]
    folder = Path(args.output_dir or tempfile.mkdtemp(prefix="precision_quality."))
    scores = {}
    for precision in precisions:
        output = folder / f"{precision}.json"
        command = ["evaluate", "--checkpoint", args.checkpoint, "--dataset", args.dataset, "--max_samples",
                   str(args.max_samples), "--steps", str(args.steps), "--precision", precision, "--device", args.device,
                   "--output", str(output), "--no_progress"]
        if args.data_root:
            command += ["--data_root", args.data_root]
        code = ifrvp(command)
        if code:
            return code
        scores[precision] = json.loads(output.read_text())["model"]
    reference = precisions[0]
    steps = [step for step in scores[reference] if ".." not in step]
    print(f"\n{args.dataset}, {args.max_samples} samples, {args.checkpoint}: model PSNR / SSIM, change vs {reference}")
    print(f"{'precision':<10}" + "".join(f"{step:>22}" for step in steps))
    for precision in precisions:
        cells = []
        for step in steps:
            psnr, ssim = scores[precision][step]["psnr"], scores[precision][step]["ssim"]
            d_psnr, d_ssim = psnr - scores[reference][step]["psnr"], ssim - scores[reference][step]["ssim"]
            cells.append(f"{psnr:7.3f} ({d_psnr:+.3f}) {d_ssim:+.4f}")
        print(f"{precision:<10}" + "".join(f"{cell:>22}" for cell in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
