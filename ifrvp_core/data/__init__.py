"""Datasets: Vimeo90K, GoPro, Cityscapes, KITTI, DAVIS 2017, UCF101, any video/frames folder, the built-in synthetic set.

`build_dataset(name, ...)` returns a `WindowDataset` (a `ShardDataset` for "shards": WebDataset tar
archives written by `data_prep pack`) whose samples follow docs/architecture.md:
`context` (K,3,H,W), `target` (n,3,H,W), `target_times` (n,), optional `teacher_flow` (2K,H,W),
synthetic `gt_flow` (2K,H,W) / `gt_valid` (K,H,W), and `name`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ifrvp_core.data.augment import AugmentConfig
from ifrvp_core.data.datasets import (
    WindowDataset,
    UCF101_CLIP,
    UCF101_MAX_STRIDE,
    cached_frame_path,
    cityscapes_windows,
    davis17_windows,
    epoch_order,
    frames_windows,
    gopro_windows,
    kitti_windows,
    synthetic_windows,
    task_layout,
    teacher_flow_path,
    ucf101_windows,
    vimeo90k_windows,
)
from ifrvp_core.data.io import DataError, read_flow, read_image, write_flow, write_image_atomic
from ifrvp_core.data.shards import ShardDataset, shard_loader

DATASETS = ("synthetic", "vimeo90k", "gopro", "cityscapes", "kitti", "davis17", "ucf101", "frames", "shards")
DEFAULT_STRIDE = {"gopro": 8}
# (W, H) every frame is resized to at load (`resize="auto"`): the sizes of the published protocols
# (docs/protocols.md; `cv2.resize`, bilinear). UCF101's 320x240 videos go to 340x256 (height 256 like the
# jpegs_256 frames DMVFN trained on), so its 256x256 training crop fits.
DEFAULT_RESIZE = {"cityscapes": (1024, 512), "kitti": (832, 256), "davis17": (854, 480), "ucf101": (340, 256)}
# The default built-in set: small enough to generate in seconds on a laptop CPU.
SYNTHETIC_DEFAULTS = dict(train_clips=48, test_clips=12, num_frames=12, height=128, width=192, seed=0)


def list_datasets() -> list[str]:
    return list(DATASETS)


def ensure_synthetic(root=None, progress: bool = True, **overrides) -> Path:
    """Generate (once) the built-in synthetic set and return its root."""
    from ifrvp_core.data.synthetic import default_synthetic_root, write_synthetic

    params = {**SYNTHETIC_DEFAULTS, **overrides}
    root = Path(root) if root else default_synthetic_root(
        params["train_clips"] + params["test_clips"], params["num_frames"], params["height"], params["width"], params["seed"]
    )
    common = dict(num_frames=params["num_frames"], height=params["height"], width=params["width"], seed=params["seed"], progress=progress)
    write_synthetic(root, "train", params["train_clips"], **common)
    write_synthetic(root, "test", params["test_clips"], **common)
    return root


def build_dataset(
    name: str,
    root=None,
    split: str = "train",
    context_frames: int = 2,
    future_frames: int = 1,
    task: str = "extrapolate",
    frame_stride: int | None = None,
    crop_size=None,
    augment: bool | AugmentConfig = False,
    seed: int = 0,
    teacher_flow: bool | str = "auto",
    window_step: int | None = None,
    test_fraction: float = 0.1,
    variant: str | None = None,
    resize="auto",
    cache_root=None,
    on_bad_sample: str = "fail",
) -> WindowDataset:
    """Build a dataset of prediction (or interpolation) samples.

    Args:
        name: one of `list_datasets()`.
        root: dataset root (for `frames`: a video file, a frames folder or a folder of clips;
            for `synthetic`: None generates the default set into a cache folder; for `shards`: a
            brace pattern or URL list such as "SHARDS/train-{000000..000123}.tar", the shards
            folder, or its `<split>-index.json` manifest; the window layout must match the pack's).
        split: "train" or "test" ("val" for the Cityscapes and DAVIS 2017 protocols).
        context_frames, future_frames: K and n.
        task: "extrapolate" (targets at t = 2, 3, ...) or "interpolate" (t = 0.5).
        frame_stride: frames between consecutive samples (GoPro default 8 = 30 fps).
        crop_size: int or (h, w) random crop when augmenting.
        augment: True for the published augmentations, or an `AugmentConfig`.
        teacher_flow: "auto" loads `<root>/teacher_flow/...` when present; True/"disk" requires
            it; "dis" computes OpenCV DIS from the (augmented) target to each context frame on
            the fly; "auto_dis" uses prepared files when present, else DIS on the fly (training's
            default); False/"none" gives none. Synthetic data always carries its exact flow.
        window_step: frames between window starts (defaults per dataset and split).
        variant: Vimeo90K "triplet" or "septuplet" (None: whichever list files the root has).
        resize: (W, H) every frame is resized to at load with `cv2.resize` (bilinear); "auto" is
            the protocol size of `DEFAULT_RESIZE` (Cityscapes 1024x512, KITTI 832x256, DAVIS
            854x480, UCF101 340x256; others native); None keeps the native size.
        cache_root: where `data_prep prepare_*` wrote the resized frames (default
            `<root>/ifrvp_cache`, then `<W>x<H>/<relative path>.png`); frames found there are read
            instead of resizing on the fly (the same pixels, PNG being lossless).
        on_bad_sample: "fail" raises `DataError` naming an unreadable file; "skip" replaces the
            sample by the next in the epoch's shuffled order and reports the file in the sample's
            `skipped_files` (training's default; evaluation always fails).
    """
    key = str(name).lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    if context_frames < 2:
        raise ValueError(f"context_frames must be >= 2, got {context_frames}")
    span, order, target_times = task_layout(task, context_frames, future_frames)
    augment_config = None
    if augment:
        augment_config = augment if isinstance(augment, AugmentConfig) else AugmentConfig()
        if crop_size is not None or not isinstance(augment, AugmentConfig):
            size = crop_size if crop_size is not None else None
            augment_config.crop_size = (size, size) if isinstance(size, int) else (tuple(size) if size else None)
    if key == "shards":
        if root is None:
            raise ValueError("dataset 'shards' needs a data root: 'SHARDS/train-{000000..000123}.tar', the folder or its manifest")
        return ShardDataset(root, split, context_frames, future_frames, task, frame_stride, augment_config, seed, teacher_flow)
    stride = frame_stride or DEFAULT_STRIDE.get(key, 1)
    if key == "synthetic" and root is None:
        root = ensure_synthetic()
    if root is None:
        raise ValueError(f"dataset {key!r} needs a data root")
    root = Path(root).expanduser()
    if key == "vimeo90k":
        windows = vimeo90k_windows(root, split, span, order, variant)
    elif key == "gopro":
        windows = gopro_windows(root, split, span, order, stride, window_step)
    elif key == "cityscapes":
        windows = cityscapes_windows(root, split, span, order, context_frames, window_step)
    elif key == "kitti":
        windows = kitti_windows(root, split, span, order, context_frames)
    elif key == "davis17":
        windows = davis17_windows(root, split, span, order, context_frames, window_step)
    elif key == "ucf101":
        windows = ucf101_windows(root, split, span, order)
    elif key == "frames":
        windows = frames_windows(root, split, span, order, stride, window_step, test_fraction)
    else:
        windows = synthetic_windows(root, split, span, order, window_step)
    if isinstance(resize, str):
        if resize != "auto":
            raise ValueError(f"resize must be 'auto', None or (W, H), got {resize!r}")
        resize = DEFAULT_RESIZE.get(key)
    elif resize is not None and (len(resize) != 2 or min(int(v) for v in resize) < 1):
        raise ValueError(f"resize must be (W, H) with positive sides, got {resize!r}")
    random_stride = key == "ucf101" and split == "train"
    return WindowDataset(
        windows,
        context_frames,
        target_times,
        root=root,
        augment=augment_config,
        seed=seed,
        teacher_flow=teacher_flow,
        synthetic=key == "synthetic",
        source=key,
        resize=resize,
        cache_root=cache_root,
        max_stride=UCF101_MAX_STRIDE if random_stride else 0,
        clip_length=UCF101_CLIP if random_stride else 0,
        on_bad_sample=on_bad_sample,
    )


def collate(samples: list[dict]) -> dict:
    """Stack tensors; keep names as a list."""
    batch = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    import random

    random.seed(seed)


class ResumableSampler(Sampler):
    """Deterministic per-epoch order shared by all ranks; each rank takes every world_size-th index.

    The order of epoch e depends only on (seed, epoch), so a resumed run sees exactly the samples
    an uninterrupted run would: `skip_batches` drops the first batches of the current epoch.
    With world_size 1 and batch 2b this yields the same samples per step as 2 ranks with batch b.
    """

    def __init__(self, dataset, batch_size: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.size = len(dataset)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip_batches = 0, 0
        self.samples_per_rank = self.size // world_size
        if self.samples_per_rank < batch_size:
            raise ValueError(f"dataset of {self.size} samples is too small for {world_size} rank(s) x batch {batch_size}")

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, skip_batches

    def batches_per_epoch(self) -> int:
        return self.samples_per_rank // self.batch_size

    def __iter__(self):
        if self.shuffle:
            order = epoch_order(self.size, self.seed, self.epoch)
        else:
            order = list(range(self.size))
        mine = order[: self.samples_per_rank * self.world_size][self.rank :: self.world_size]
        usable = self.batches_per_epoch() * self.batch_size
        return iter(mine[self.skip_batches * self.batch_size : usable])

    def __len__(self) -> int:
        return max(0, (self.batches_per_epoch() - self.skip_batches) * self.batch_size)


def make_loader(
    dataset,
    batch_size: int,
    shuffle: bool = True,
    num_workers: int = 0,
    seed: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
) -> DataLoader:
    """A seeded DataLoader over a `ResumableSampler` (rank/world from torch.distributed when initialised).

    A `ShardDataset` streams instead: rank `rank` reads its own shards and the loader yields
    `loader_batches_per_epoch(loader)` batches per epoch. Call `set_loader_epoch(loader, epoch,
    skip_batches)` at the start of every epoch.
    """
    import torch.distributed as dist

    if rank is None or world_size is None:
        initialised = dist.is_available() and dist.is_initialized()
        rank = dist.get_rank() if initialised else 0
        world_size = dist.get_world_size() if initialised else 1
    if isinstance(dataset, ShardDataset):
        return shard_loader(dataset, batch_size, shuffle, num_workers, seed, rank, world_size, worker_init_fn=_seed_worker)
    sampler = ResumableSampler(dataset, batch_size, shuffle, seed, rank, world_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        drop_last=True,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )


def set_loader_epoch(loader: DataLoader, epoch: int, skip_batches: int = 0) -> None:
    """Start `epoch` at batch `skip_batches` (an exact resume inside an epoch)."""
    if isinstance(loader.dataset, ShardDataset):
        loader.dataset.set_epoch(epoch, skip_batches)
        return
    loader.sampler.set_epoch(epoch, skip_batches)
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)


def loader_batches_per_epoch(loader: DataLoader) -> int:
    """Batches per epoch and rank of a `make_loader` loader (map-style or shards)."""
    if isinstance(loader.dataset, ShardDataset):
        return loader.dataset.batches_per_epoch()
    return loader.sampler.batches_per_epoch()


__all__ = [
    "AugmentConfig",
    "DataError",
    "WindowDataset",
    "DEFAULT_RESIZE",
    "build_dataset",
    "cached_frame_path",
    "epoch_order",
    "collate",
    "ensure_synthetic",
    "list_datasets",
    "make_loader",
    "ResumableSampler",
    "ShardDataset",
    "loader_batches_per_epoch",
    "read_flow",
    "read_image",
    "set_loader_epoch",
    "teacher_flow_path",
    "write_flow",
    "write_image_atomic",
]
