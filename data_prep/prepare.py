"""prepare_cityscapes, prepare_kitti, prepare_davis: resize the protocol's frames once into a cache.

The readers (`ifrvp_core.data.build_dataset`) resize every frame at load to the protocol size
(`DEFAULT_RESIZE`: Cityscapes 1024x512, KITTI 832x256, DAVIS 2017 854x480) with `cv2.resize`'s
default bilinear interpolation, as DMVFN's prepare scripts do. Decoding a 2048x1024 PNG and resizing
it on every read is slow, so these tools write the resized frames once to

    <cache_root>/<W>x<H>/<path relative to the dataset root>.png      (cache_root: <root>/ifrvp_cache)

and the readers use a cached frame whenever it exists (lossless PNG: the same pixels as resizing on
the fly). The source files are never modified. Resumable (existing cache files are skipped), atomic
(temporary file + rename), with a progress bar.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ifrvp_core.data.build import DEFAULT_RESIZE
from ifrvp_core.data.io import DataError, read_image, write_image_atomic
from ifrvp_core.data.layouts import CITYSCAPES_NAME, davis17_video_folders, kitti_frame_folders
from ifrvp_core.data.sample import CACHE_DIR, cached_frame_path, resize_frame
from ifrvp_core.data.windows import list_images

DEFAULT_SPLITS = {"cityscapes": ("train", "val"), "kitti": ("train", "test"), "davis17": ("val",)}


@dataclass
class PrepareReport:
    """What a prepare tool did: frames per split, how many were written or already cached."""

    dataset: str
    root: Path
    cache_dir: Path
    size: tuple[int, int]
    frames: dict = field(default_factory=dict)  # split -> frames found
    written: int = 0
    skipped: int = 0  # already in the cache
    missing: list = field(default_factory=list)  # split folders / list files / drives not found

    def summary(self) -> str:
        width, height = self.size
        lines = [f"{self.dataset}: {sum(self.frames.values())} frames resized to {width}x{height} "
                 f"(cv2.resize, bilinear) into {self.cache_dir}"]
        lines += [f"  {split:<6}{count:>9} frames" for split, count in self.frames.items()]
        lines.append(f"  written {self.written}, already cached {self.skipped}")
        lines += [f"  not found (skipped): {item}" for item in self.missing]
        return "\n".join(lines)


def _cityscapes_frames(root: Path, split: str, report: PrepareReport) -> list[Path]:
    folder = root / "leftImg8bit_sequence" / split
    if not folder.is_dir():
        report.missing.append(folder)
        return []
    return sorted(p for p in folder.glob("*/*.png") if CITYSCAPES_NAME.match(p.name))


def _frames_of(folders, report: PrepareReport) -> list[Path]:
    frames = []
    for folder in folders:
        if folder.is_dir():
            frames.extend(list_images(folder))
        else:
            report.missing.append(folder)
    return frames


def _kitti_frames(root: Path, split: str, report: PrepareReport) -> list[Path]:
    return _frames_of([folder for _, _, folder in kitti_frame_folders(root, split)], report)


def _davis_frames(root: Path, split: str, report: PrepareReport) -> list[Path]:
    list_file = root / "ImageSets" / "2017" / f"{split}.txt"
    if not list_file.is_file():
        report.missing.append(list_file)
        return []
    return _frames_of([folder for _, folder in davis17_video_folders(root, split)], report)


LISTERS = {"cityscapes": _cityscapes_frames, "kitti": _kitti_frames, "davis17": _davis_frames}


def prepare_resized(dataset: str, root, splits=None, size=None, cache_root=None, workers: int = 2, progress: bool = True) -> PrepareReport:
    """Resize every frame of `splits` of `dataset` to `size` (W, H) into the cache the readers use.

    Args:
        dataset: "cityscapes", "kitti" or "davis17".
        root: the dataset root (as given to `build_dataset`).
        splits: default Cityscapes train, val; KITTI train, test (the FVS drives); DAVIS val.
        size: (W, H), default the protocol's (`DEFAULT_RESIZE`).
        cache_root: default `<root>/ifrvp_cache` (pass the same to `build_dataset(cache_root=...)`).
    Returns:
        a PrepareReport (its `summary()` is what the command line prints).
    """
    if dataset not in LISTERS:
        raise ValueError(f"prepare knows {', '.join(LISTERS)}, got {dataset!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset root not found: {root}")
    size = tuple(int(v) for v in (size or DEFAULT_RESIZE[dataset]))
    cache_base = Path(cache_root) if cache_root is not None else root / CACHE_DIR
    report = PrepareReport(dataset, root, cache_base / f"{size[0]}x{size[1]}", size)
    jobs = []
    for split in splits or DEFAULT_SPLITS[dataset]:
        frames = LISTERS[dataset](root, split, report)
        report.frames[split] = len(frames)
        jobs.extend((frame, cached_frame_path(root, frame, size, cache_base)) for frame in frames)
    if not jobs:
        raise DataError(f"no {dataset} frames found under {root} (looked for: {', '.join(str(m) for m in report.missing[:3])})")

    def run(job) -> bool:
        source, target = job
        if target.is_file():
            return False
        write_image_atomic(target, resize_frame(read_image(source), size))
        return True

    with ThreadPoolExecutor(max(1, workers)) as pool:
        done = list(tqdm(pool.map(run, jobs), total=len(jobs), desc=f"prepare {dataset} {size[0]}x{size[1]}", disable=not progress))
    report.written = sum(done)
    report.skipped = len(done) - report.written
    return report


def prepare_cityscapes(root, splits=None, size=None, cache_root=None, workers: int = 2, progress: bool = True) -> PrepareReport:
    """`prepare_resized("cityscapes", ...)`: leftImg8bit_sequence train + val at 1024x512."""
    return prepare_resized("cityscapes", root, splits, size, cache_root, workers, progress)


def prepare_kitti(root, splits=None, size=None, cache_root=None, workers: int = 2, progress: bool = True) -> PrepareReport:
    """`prepare_resized("kitti", ...)`: the FVS drives (train: image_02 + image_03, test: image_02) at 832x256."""
    return prepare_resized("kitti", root, splits, size, cache_root, workers, progress)


def prepare_davis(root, splits=None, size=None, cache_root=None, workers: int = 2, progress: bool = True) -> PrepareReport:
    """`prepare_resized("davis17", ...)`: the videos of ImageSets/2017/val.txt at 854x480."""
    return prepare_resized("davis17", root, splits, size, cache_root, workers, progress)
