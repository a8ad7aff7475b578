"""Training steps/s with the motion prior computed in the main process (the model) vs in the loader workers.

    python benchmarks/prior_in_workers.py                       # IFRNet_T, crop 128, batch 4, 2 workers, 5 repeats
    python benchmarks/prior_in_workers.py --model IFRNet_S --crop 224 --batch_size 12 --regions crop frame

Each configuration builds the real `Trainer` of the default recipe (`TrainConfig` defaults:
`motion_prior` dis, augmentation, `num_workers` loader workers) on a generated synthetic set, with
the smaller model, crop and batch given here. "main" clears the training set's `prior_flow` so
the batches come without it and the model runs OpenCV DIS inside every training step (the path
before the prior moved to the workers); "workers" is the default (`flow_region` crop); "frame"
computes the prior on the full frame in the workers (`--flow_region frame`). A repeat times
`--steps` optimiser steps after `--warmup` steps of a fresh pass over the loader (the workers
start at each pass); the median steps/s over `--repeats` repeats is printed, with every repeat.
On a shared machine the spread between repeats is the noise to read the medians against.
It also prints what the prior costs the main process when the model computes it: the median time
of `constant_velocity_prior` on one training batch (the most a step can gain when the workers
have idle cores to run it on).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from ifrvp_core.data import ensure_synthetic, set_loader_epoch  # noqa: E402
from ifrvp_core.motion_prior import constant_velocity_prior  # noqa: E402
from ifrvp_core.train import Dist, TrainConfig, Trainer  # noqa: E402

MODES = {"main": "crop", "workers": "crop", "frame": "frame"}  # mode -> flow_region


def steps_per_second(trainer: Trainer, warmup: int, steps: int) -> float:
    """Optimiser steps/s over `steps` steps after `warmup` steps of one fresh pass over the loader."""
    set_loader_epoch(trainer.loader, 0)
    started, taken = None, 0
    for batch in trainer.loader:
        if taken == warmup:
            started = time.perf_counter()
        trainer.train_step(batch)
        taken += 1
        if taken == warmup + steps:
            break
    if taken < warmup + steps:
        raise RuntimeError(f"the loader gave {taken} batches, fewer than {warmup + steps}: use a larger --clips")
    return steps / (time.perf_counter() - started)


def prior_ms(trainer: Trainer, repeats: int) -> list[float]:
    """Milliseconds of `constant_velocity_prior` on one training batch, `repeats` times (the DIS a step runs without workers)."""
    set_loader_epoch(trainer.loader, 0)
    batch = next(iter(trainer.loader))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        constant_velocity_prior(batch["context"], batch["target_times"][:, 0])
        times.append(1000 * (time.perf_counter() - started))
    return times


def build(mode: str, args, data_root: Path, log_root: Path) -> Trainer:
    config = TrainConfig(model_name=args.model, dataset="synthetic", data_root=str(data_root), crop_size=args.crop,
                         batch_size=args.batch_size, num_workers=args.num_workers, flow_region=MODES[mode], val_samples=0,
                         log_path=str(log_root), run_name=mode, seed=0)
    trainer = Trainer(config, Dist())
    if mode == "main":
        trainer.loader.dataset.prior_flow = False  # the model computes the prior in the training step
    trainer.model.train()
    return trainer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="IFRNet_T")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--num_workers", type=int, default=TrainConfig.num_workers)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modes", nargs="+", default=["main", "workers"], choices=sorted(MODES))
    parser.add_argument("--clips", type=int, default=8, help="synthetic training clips (each gives several windows)")
    parser.add_argument("--frame_size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="synthetic frame size (default crop + 32 by crop + 96)")
    args = parser.parse_args(argv)
    height, width = args.frame_size or (args.crop + 32, args.crop + 96)
    work = Path(tempfile.mkdtemp(prefix="ifrvp_prior_bench_"))
    data_root = ensure_synthetic(work / "synthetic", progress=False, train_clips=args.clips, test_clips=1, num_frames=12,
                                 height=height, width=width)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}; torch {torch.__version__}; {torch.get_num_threads()} intra-op thread(s); {args.model}, crop {args.crop} "
          f"of {height}x{width} frames, batch {args.batch_size}, {args.num_workers} loader worker(s); median of {args.repeats} repeats "
          f"x {args.steps} steps after {args.warmup} warm-up steps")
    rates = {mode: [] for mode in args.modes}
    trainers = {mode: build(mode, args, data_root, work / "runs") for mode in args.modes}
    for _ in range(args.repeats):  # the modes interleaved, so a change in the machine's load reaches them alike
        for mode, trainer in trainers.items():
            rates[mode].append(steps_per_second(trainer, args.warmup, args.steps))
    for mode, values in rates.items():
        print(f"{mode:8s} {statistics.median(values):6.2f} steps/s  (repeats: {', '.join(f'{v:.2f}' for v in values)})")
    dis = prior_ms(next(iter(trainers.values())), 5 * args.repeats)
    print(f"the prior of one batch in the main process: {statistics.median(dis):.1f} ms (median of {len(dis)}; "
          f"min {min(dis):.1f}, max {max(dis):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
