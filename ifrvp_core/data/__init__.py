"""Datasets: Vimeo90K, GoPro, Cityscapes, KITTI, DAVIS 2017, UCF101, any video/frames folder, the built-in synthetic set.

`build_dataset(name, ...)` returns a `WindowDataset` (a `ShardDataset` for "shards": WebDataset tar
archives written by `data_prep pack`) whose samples follow docs/architecture.md:
`context` (K,3,H,W), `target` (n,3,H,W), `target_times` (n,), optional `teacher_flow` (2K,H,W),
synthetic `gt_flow` (2K,H,W) / `gt_valid` (K,H,W), and `name`.

The package, one concept per module:

    build      build_dataset, list_datasets, ensure_synthetic, the per-dataset defaults
    layouts    the windows of each dataset layout (vimeo90k, gopro, cityscapes, kitti, davis17, ucf101, frames, synthetic)
    windows    Window, sliding and protocol windows, task layout, list_images
    sample     the steps of one sample (reading frames, flows, time reversal, augmentation)
    teacher    teacher flow files and modes
    datasets   WindowDataset
    shards     ShardDataset, the WebDataset shard reader
    loader     epoch order, ResumableSampler, collate, make_loader
    io, augment, synthetic
"""
from ifrvp_core.data.augment import AugmentConfig
from ifrvp_core.data.build import DATASETS, DEFAULT_RESIZE, DEFAULT_STRIDE, SYNTHETIC_DEFAULTS, build_dataset, ensure_synthetic, list_datasets
from ifrvp_core.data.datasets import WindowDataset
from ifrvp_core.data.io import DataError, SplitNotFoundError, read_flow, read_image, write_flow, write_image_atomic
from ifrvp_core.data.layouts import (
    UCF101_CLIP,
    UCF101_MAX_STRIDE,
    cityscapes_windows,
    davis17_windows,
    frames_windows,
    gopro_windows,
    kitti_windows,
    synthetic_windows,
    ucf101_windows,
    vimeo90k_windows,
)
from ifrvp_core.data.loader import EpochLoader, ResumableSampler, collate, epoch_order, loader_batches_per_epoch, make_loader, set_loader_epoch
from ifrvp_core.data.sample import cached_frame_path
from ifrvp_core.data.shards import ShardDataset, shard_loader
from ifrvp_core.data.teacher import teacher_flow_path
from ifrvp_core.data.windows import Window, list_images, task_layout

__all__ = [
    "AugmentConfig",
    "DATASETS",
    "DEFAULT_RESIZE",
    "DEFAULT_STRIDE",
    "DataError",
    "EpochLoader",
    "ResumableSampler",
    "SYNTHETIC_DEFAULTS",
    "ShardDataset",
    "SplitNotFoundError",
    "UCF101_CLIP",
    "UCF101_MAX_STRIDE",
    "Window",
    "WindowDataset",
    "build_dataset",
    "cached_frame_path",
    "cityscapes_windows",
    "collate",
    "davis17_windows",
    "ensure_synthetic",
    "epoch_order",
    "frames_windows",
    "gopro_windows",
    "kitti_windows",
    "list_datasets",
    "list_images",
    "loader_batches_per_epoch",
    "make_loader",
    "read_flow",
    "read_image",
    "set_loader_epoch",
    "shard_loader",
    "synthetic_windows",
    "task_layout",
    "teacher_flow_path",
    "ucf101_windows",
    "vimeo90k_windows",
    "write_flow",
    "write_image_atomic",
]
