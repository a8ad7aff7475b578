"""Datasets: Vimeo90K, GoPro, Cityscapes, any video/frames folder, and the built-in synthetic set.

`build_dataset(name, ...)` returns a `WindowDataset` whose samples follow docs/architecture.md:
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
    cityscapes_windows,
    epoch_order,
    frames_windows,
    gopro_windows,
    synthetic_windows,
    task_layout,
    teacher_flow_path,
    vimeo90k_windows,
)
from ifrvp_core.data.io import DataError, read_flow, read_image, write_flow, write_image_atomic

DATASETS = ("synthetic", "vimeo90k", "gopro", "cityscapes", "frames")
DEFAULT_STRIDE = {"gopro": 8}
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
    on_bad_sample: str = "fail",
) -> WindowDataset:
    """Build a dataset of prediction (or interpolation) samples.

    Args:
        name: one of `list_datasets()`.
        root: dataset root (for `frames`: a video file, a frames folder or a folder of clips;
            for `synthetic`: None generates the default set into a cache folder).
        split: "train" or "test" ("val" for Cityscapes evaluation).
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
    elif key == "frames":
        windows = frames_windows(root, split, span, order, stride, window_step, test_fraction)
    else:
        windows = synthetic_windows(root, split, span, order, window_step)
    augment_config = None
    if augment:
        augment_config = augment if isinstance(augment, AugmentConfig) else AugmentConfig()
        if crop_size is not None or not isinstance(augment, AugmentConfig):
            size = crop_size if crop_size is not None else None
            augment_config.crop_size = (size, size) if isinstance(size, int) else (tuple(size) if size else None)
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

    Call `set_loader_epoch(loader, epoch, skip_batches)` at the start of every epoch.
    """
    import torch.distributed as dist

    if rank is None or world_size is None:
        initialised = dist.is_available() and dist.is_initialized()
        rank = dist.get_rank() if initialised else 0
        world_size = dist.get_world_size() if initialised else 1
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
    loader.sampler.set_epoch(epoch, skip_batches)
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)


__all__ = [
    "AugmentConfig",
    "DataError",
    "WindowDataset",
    "build_dataset",
    "epoch_order",
    "collate",
    "ensure_synthetic",
    "list_datasets",
    "make_loader",
    "ResumableSampler",
    "read_flow",
    "read_image",
    "set_loader_epoch",
    "teacher_flow_path",
    "write_flow",
    "write_image_atomic",
]
