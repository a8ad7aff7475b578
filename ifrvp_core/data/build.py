"""`build_dataset(name, ...)`: a dataset by name, with the defaults of each published protocol.

Each layout's windows come from `ifrvp_core.data.layouts`; the result is a `WindowDataset`, or a
`ShardDataset` for "shards" (WebDataset tar archives written by `data_prep pack`).
"""
from __future__ import annotations

from pathlib import Path

from ifrvp_core.data.augment import AugmentConfig
from ifrvp_core.data.datasets import WindowDataset
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
from ifrvp_core.data.shards import ShardDataset
from ifrvp_core.data.synthetic import default_synthetic_root, write_synthetic
from ifrvp_core.data.teacher import DEFAULT_TEACHER_MODE
from ifrvp_core.data.windows import Window, task_layout

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
    params = {**SYNTHETIC_DEFAULTS, **overrides}
    root = Path(root) if root else default_synthetic_root(
        params["train_clips"] + params["test_clips"], params["num_frames"], params["height"], params["width"], params["seed"]
    )
    common = dict(num_frames=params["num_frames"], height=params["height"], width=params["width"], seed=params["seed"], progress=progress)
    write_synthetic(root, "train", params["train_clips"], **common)
    write_synthetic(root, "test", params["test_clips"], **common)
    return root


def augment_config(augment: bool | AugmentConfig, crop_size) -> AugmentConfig | None:
    """The `AugmentConfig` of `build_dataset(augment=, crop_size=)`; None when not augmenting.

    `augment=True` is the published augmentations with the crop of `crop_size` (None: no crop); an
    `AugmentConfig` keeps its own crop unless `crop_size` is given (which then sets it on that config).
    """
    if not augment:
        return None
    config = augment if isinstance(augment, AugmentConfig) else AugmentConfig()
    if crop_size is not None or not isinstance(augment, AugmentConfig):
        config.crop_size = (crop_size, crop_size) if isinstance(crop_size, int) else (tuple(crop_size) if crop_size else None)
    return config


def resolve_resize(key: str, resize):
    """The (W, H) frames of dataset `key` are resized to: "auto" is `DEFAULT_RESIZE` (or native), None native."""
    if isinstance(resize, str):
        if resize != "auto":
            raise ValueError(f"resize must be 'auto', None or (W, H), got {resize!r}")
        return DEFAULT_RESIZE.get(key)
    if resize is not None and (len(resize) != 2 or min(int(v) for v in resize) < 1):
        raise ValueError(f"resize must be (W, H) with positive sides, got {resize!r}")
    return resize


def layout_windows(key: str, root: Path, split: str, span: int, order, context_frames: int, stride: int,
                   window_step: int | None, test_fraction: float, variant: str | None, motion_strides: int = 1) -> list[Window]:
    """The windows of dataset `key` (any name of `DATASETS` but "shards") under `root`."""
    if int(motion_strides) < 1:
        raise ValueError(f"motion_strides must be >= 1, got {motion_strides!r}")
    if key == "vimeo90k":
        return vimeo90k_windows(root, split, span, order, variant)
    if key == "gopro":
        return gopro_windows(root, split, span, order, stride, window_step)
    if key == "cityscapes":
        return cityscapes_windows(root, split, span, order, context_frames, window_step)
    if key == "kitti":
        return kitti_windows(root, split, span, order, context_frames)
    if key == "davis17":
        return davis17_windows(root, split, span, order, context_frames, window_step)
    if key == "ucf101":
        return ucf101_windows(root, split, span, order)
    if key == "frames":
        return frames_windows(root, split, span, order, stride, window_step, test_fraction, int(motion_strides))
    return synthetic_windows(root, split, span, order, window_step)


def build_dataset(name: str, root=None, split: str = "train", context_frames: int = 2, future_frames: int = 1, task: str = "extrapolate",
                  frame_stride: int | None = None, crop_size=None, augment: bool | AugmentConfig = False, seed: int = 0,
                  teacher_flow: bool | str = DEFAULT_TEACHER_MODE, window_step: int | None = None, test_fraction: float = 0.1,
                  variant: str | None = None, resize="auto", cache_root=None, on_bad_sample: str = "fail", motion_strides: int = 1,
                  prior_flow: bool = False, flow_region: str = "crop") -> WindowDataset:
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
        teacher_flow: "files" (the default) loads `<root>/teacher_flow/...` when present;
            True/"disk" requires it; "dis" computes OpenCV DIS from the (augmented) target to each
            context frame on the fly; "auto" uses prepared files when present, else DIS on the fly
            (training's `--teacher_flow auto`; "auto_dis" is its old name); False/"none" gives none.
            Synthetic data always carries its exact flow. Any other value is a `ValueError`.
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
        motion_strides: `frames` training windows at frame strides 1..N x `frame_stride` (N x the motion).
        prior_flow: add the motion prior `prior_flow` (2K,H,W) at `target_times[0]` to every sample,
            `constant_velocity_prior` of the sample's context (what training passes to a
            `motion_prior="dis"` model, so its DIS runs in the loader workers). Always DIS: a
            `motion_prior="lucas_kanade"` model computes its prior itself, on its device, so its
            datasets are built without it (`TrainConfig.train_data_options`).
        flow_region: where the DIS prior and on-the-fly teacher are computed: "crop" (the default)
            on the final (augmented) sample; "frame" on the full (resized) frames before
            augmentation, then cropped, flipped, transposed and resized with them.
    """
    key = str(name).lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    if context_frames < 2:
        raise ValueError(f"context_frames must be >= 2, got {context_frames}")
    span, order, target_times = task_layout(task, context_frames, future_frames)
    augmenting = augment_config(augment, crop_size)
    if key == "shards":
        if root is None:
            raise ValueError("dataset 'shards' needs a data root: 'SHARDS/train-{000000..000123}.tar', the folder or its manifest")
        return ShardDataset(root, split, context_frames, future_frames, task, frame_stride, augmenting, seed, teacher_flow,
                            prior_flow=prior_flow, flow_region=flow_region)
    stride = frame_stride or DEFAULT_STRIDE.get(key, 1)
    if key == "synthetic" and root is None:
        root = ensure_synthetic()
    if root is None:
        raise ValueError(f"dataset {key!r} needs a data root")
    root = Path(root).expanduser()
    windows = layout_windows(key, root, split, span, order, context_frames, stride, window_step, test_fraction, variant, motion_strides)
    random_stride = key == "ucf101" and split == "train"
    return WindowDataset(windows, context_frames, target_times, root=root, augment=augmenting, seed=seed, teacher_flow=teacher_flow,
                         synthetic=key == "synthetic", source=key, resize=resolve_resize(key, resize), cache_root=cache_root,
                         max_stride=UCF101_MAX_STRIDE if random_stride else 0, clip_length=UCF101_CLIP if random_stride else 0,
                         on_bad_sample=on_bad_sample, prior_flow=prior_flow, flow_region=flow_region)


__all__ = ["DATASETS", "DEFAULT_RESIZE", "DEFAULT_STRIDE", "SYNTHETIC_DEFAULTS", "augment_config", "build_dataset", "ensure_synthetic",
           "layout_windows", "list_datasets", "resolve_resize"]
