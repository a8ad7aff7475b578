"""Samples/s of the data pipeline at Vimeo90K and Cityscapes sizes with 0, 1, 2 workers.

    python benchmarks/data_throughput.py [--batches 20] [--repeats 3]

Fixture frames are generated in a temporary folder in the real layouts (smooth random images
saved as PNG, so decoding costs what real frames cost):
- vimeo: 256x448 septuplets, K=2 + 1 target, random crop 224 + all augmentations;
- cityscapes: 1024x2048 frames, K=2 + 1 target, random crop 512x1024 (training at a reduced
  crop, as DMVFN does); plus the same read from a data_prep downscaled copy (512x1024, crop 256).
The figure is the median over `--repeats` passes of `--batches` batches of 4.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ifrvp_core.data import build_dataset, make_loader, set_loader_epoch
from ifrvp_core.data.augment import AugmentConfig


def smooth_frame(seed: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (height // 16, width // 16, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def make_vimeo(root: Path, sequences: int = 12) -> Path:
    entries = []
    for s in range(sequences):
        entry = f"{s // 10 + 1:05d}/{s % 10 + 1:04d}"
        entries.append(entry)
        for i in range(1, 8):
            path = root / "sequences" / entry / f"im{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), smooth_frame(s * 10 + i, 256, 448))
    (root / "sep_trainlist.txt").write_text("\n".join(entries))
    return root


def make_cityscapes(root: Path, frames: int = 30) -> Path:  # one 30-frame snippet
    folder = root / "leftImg8bit_sequence" / "train" / "aachen"
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(frames):
        cv2.imwrite(str(folder / f"aachen_000000_{n:06d}_leftImg8bit.png"), smooth_frame(n, 1024, 2048))
    return root


def measure(dataset, workers: int, batches: int, repeats: int, batch_size: int = 4) -> float:
    loader = make_loader(dataset, batch_size, True, workers, seed=0)
    rates = []
    for repeat in range(repeats):
        set_loader_epoch(loader, repeat)
        count, start = 0, time.perf_counter()
        for index, batch in enumerate(loader):
            count += batch["context"].shape[0]
            if index + 1 >= batches:
                break
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="0,1,2")
    args = parser.parse_args(argv)
    augment = AugmentConfig(crop_size=(224, 224))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        vimeo = make_vimeo(tmp / "vimeo")
        city = make_cityscapes(tmp / "city")
        from data_prep.tools import downscale_cityscapes

        downscale_cityscapes(city, tmp / "city_small", (1024, 512), workers=1, progress=False)
        pipelines = {
            "vimeo 256x448 crop 224": build_dataset("vimeo90k", vimeo, "train", augment=augment),
            "cityscapes 1024x2048 crop 512x1024": build_dataset(
                "cityscapes", city, "train", augment=AugmentConfig(crop_size=(512, 1024)), window_step=3, resize=None),
            "cityscapes downscaled 512x1024 crop 256": build_dataset(
                "cityscapes", tmp / "city_small", "train", augment=AugmentConfig(crop_size=(256, 256)), window_step=1, resize=None),
        }
        print(f"{'pipeline':<42} " + " ".join(f"{f'{w} workers':>12}" for w in args.workers.split(",")))
        for name, dataset in pipelines.items():
            rates = [measure(dataset, int(w), args.batches, args.repeats) for w in args.workers.split(",")]
            print(f"{name:<42} " + " ".join(f"{r:9.1f} s/s" for r in rates), flush=True)
        print("(s/s = samples per second, median of repeats; each sample is K=2 context + 1 target frame)")


if __name__ == "__main__":
    main()
