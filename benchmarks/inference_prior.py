"""How the motion prior is scheduled at inference: DIS threads across a batch, and the prior computed one batch ahead.

    python benchmarks/inference_prior.py                     # batch 4 at 256x448, 7 repeats; evaluation of 8 samples
    python benchmarks/inference_prior.py --model IFRNet_S --samples 16 --steps 5 --repeats 5

Part 1 times `dis_flow_batch` (the DIS of `constant_velocity_prior`) on one batch of `--batch_size`
frame pairs at `--height`x`--width`, one thread against `--threads` (default: `DIS_THREADS`, at
least 2; one DIS object per thread), the repeats interleaved, and checks the flows are equal bit
for bit. Part 2 times
`evaluate_model` (the model, a random-weight `--model` with the DIS prior, and the baselines) on a
generated synthetic test set at that size, without and with `prefetch_priors` (the next batch's
first-step priors on a background thread, `rollout.FirstStepPriors`), and checks the results are
equal. Medians of `--repeats`, every repeat printed; on a shared machine the spread between
repeats is the noise to read them against.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ifrvp_core.data.synthetic import write_synthetic  # noqa: E402
from ifrvp_core.evaluate import evaluate_model  # noqa: E402
from ifrvp_core.models import build_model  # noqa: E402
from ifrvp_core.motion_prior import DIS_THREADS, dis_flow_batch  # noqa: E402


def moving_batch(batch: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(newest, previous) (B, 3, H, W) in [0, 1]: a smooth random texture shifted by a few pixels per sample."""
    gen = torch.Generator().manual_seed(seed)
    texture = torch.nn.functional.interpolate(torch.rand(batch, 3, (height + 32) // 8, (width + 32) // 8, generator=gen),
                                              size=(height + 32, width + 32), mode="bicubic", align_corners=False).clamp(0, 1)
    shifts = [(1 + i % 4, 2 - i % 3) for i in range(batch)]
    newest = torch.stack([texture[i, :, 16:16 + height, 16:16 + width] for i in range(batch)])
    previous = torch.stack([texture[i, :, 16 - dy:16 - dy + height, 16 - dx:16 - dx + width] for i, (dx, dy) in enumerate(shifts)])
    return newest, previous


def time_dis(args) -> dict:
    newest, previous = moving_batch(args.batch_size, args.height, args.width)
    reference = dis_flow_batch(newest, previous, threads=1)  # also the warm-up
    times = {1: [], args.threads: []}
    for repeat in range(args.repeats):
        for threads in list(times)[:: 1 if repeat % 2 == 0 else -1]:  # alternating order: no side gains from going first
            started = time.perf_counter()
            flows = dis_flow_batch(newest, previous, threads=threads)
            times[threads].append(1000 * (time.perf_counter() - started))
            if not torch.equal(flows, reference):
                raise RuntimeError(f"{threads} DIS threads gave other flows than one")
    return times


def time_evaluation(args, root: Path) -> dict:
    torch.manual_seed(0)
    model = build_model(args.model, motion_prior="dis").eval()
    options = dict(root=root, steps=args.steps, batch_size=args.batch_size, device="cpu", progress=False, metrics=("psnr", "ssim"))
    times, results = {False: [], True: []}, {}
    evaluate_model(model, "synthetic", max_samples=args.batch_size, **options)  # warm-up: allocator, first calls
    for repeat in range(args.repeats):
        for prefetch in list(times)[:: 1 if repeat % 2 == 0 else -1]:  # alternating order
            started = time.perf_counter()
            results[prefetch] = evaluate_model(model, "synthetic", prefetch_priors=prefetch, **options)
            times[prefetch].append(time.perf_counter() - started)
    plain, ahead = results[False], results[True]
    same = all(np.array_equal(ahead.per_sample[m][s][k], v) for m in plain.per_sample for s, row in plain.per_sample[m].items()
               for k, v in row.items())
    if not same or any(ahead[m] != plain[m] for m in plain):
        raise RuntimeError("the priors computed ahead changed the results")
    return times


def spread(values: list[float], unit: str, digits: int = 1) -> str:
    return f"median {statistics.median(values):.{digits}f} {unit} (repeats: {', '.join(f'{v:.{digits}f}' for v in values)})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="IFRNet_S")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=448)
    parser.add_argument("--samples", type=int, default=8, help="test windows of the evaluation (one per clip)")
    parser.add_argument("--steps", type=int, default=1, help="future steps of the evaluation (only the first one's prior is computed ahead)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=max(2, DIS_THREADS), help="DIS threads to compare with one")
    parser.add_argument("--skip_evaluation", action="store_true", help="part 1 only")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.batch_size < 1 or args.threads < 2:
        parser.error("--repeats and --batch_size must be >= 1, --threads >= 2")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, DIS_THREADS {DIS_THREADS}; "
          f"batch {args.batch_size} at {args.height}x{args.width}")
    dis = time_dis(args)
    one, many = statistics.median(dis[1]), statistics.median(dis[args.threads])
    print(f"dis_flow_batch, 1 thread:  {spread(dis[1], 'ms')}")
    print(f"dis_flow_batch, {args.threads} threads: {spread(dis[args.threads], 'ms')}; speed-up {one / many:.2f}x (flows equal)")
    if args.skip_evaluation:
        return 0
    with tempfile.TemporaryDirectory(prefix="ifrvp_inference_prior_") as work:
        root = Path(work)
        write_synthetic(root, "test", args.samples, num_frames=2 + args.steps, height=args.height, width=args.width, seed=3,
                        progress=False)
        evaluation = time_evaluation(args, root)
    plain, ahead = statistics.median(evaluation[False]), statistics.median(evaluation[True])
    print(f"evaluate_model {args.model} + baselines, {args.samples} samples, {args.steps} step(s):")
    print(f"  without prefetch_priors: {spread(evaluation[False], 's', 2)}")
    print(f"  with prefetch_priors:    {spread(evaluation[True], 's', 2)}; {plain / ahead:.2f}x (results equal)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
