"""One sample: the steps from a window's frames to the sample dict of docs/architecture.md.

Shared by every reader (folders, videos, WebDataset shards), so a sample is read, reversed in
time, given its flows and augmented by the same code whatever the storage:

    rng = sample_rng(seed, epoch, index)         the sample's generator, the same in any worker or rank
    reverse = draw_time_reverse(augment, rng)    its first draw
    frames -> reverse_window -> FrameReader.load_frames -> make_sample (+ flows) -> finish_sample

Shapes: frames uint8 (N, H, W, 3) RGB with N = K + n; `context` (K,3,H,W), `target` (n,3,H,W),
`target_times` (n,), flows (2K,H,W) with x on even and y on odd channels, `gt_valid` (K,H,W).

`finish_sample` also computes the OpenCV DIS flows asked for: the teacher flow and the motion
prior `prior_flow` (2K,H,W) at the first target time, the flow a `motion_prior="dis"` model takes
(so training runs DIS in the data-loader workers, not in the training step; a "lucas_kanade"
model computes its torch prior on its own device and gets no `prior_flow`). `flow_region` says
where: "crop" on the final (augmented) sample, exactly what the model would compute from the
batch; "frame" on the whole (resized) frames before augmentation, the flows then cropped, flipped
and resized with the frames, as evaluation sees the full frame.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ifrvp_core.data.augment import AugmentConfig, augment as apply_augment
from ifrvp_core.data.io import DataError, VideoReader, read_flow, read_image
from ifrvp_core.data.synthetic import synthetic_flow
from ifrvp_core.data.teacher import teacher_flow_path
from ifrvp_core.data.windows import frame_label
from ifrvp_core.motion_prior import constant_velocity_prior, dis_teacher_flow

CACHE_DIR = "ifrvp_cache"
# Where `finish_sample` computes the DIS teacher flow and prior: the final crop, or the full frame before augmentation.
FLOW_REGIONS = ("crop", "frame")


# ----------------------------------------------------------------------------- reading frames
def cached_frame_path(root: Path, frame: Path, size, cache_root: Path | None = None) -> Path:
    """Where `data_prep prepare_*` keeps `frame` resized to `size` (W, H): `<cache_root>/<W>x<H>/<relative path>.png`.

    `cache_root` defaults to `<root>/ifrvp_cache`; the cache is lossless PNG whatever the source format.
    """
    width, height = size
    base = Path(cache_root) if cache_root is not None else Path(root) / CACHE_DIR
    return base / f"{width}x{height}" / Path(frame).relative_to(root).with_suffix(".png")


def resize_frame(image: np.ndarray, size) -> np.ndarray:
    """uint8 (H, W, 3) -> (size[1], size[0], 3) with `cv2.resize(image, (W, H))`, the published code's call.

    The default interpolation (bilinear) is kept on purpose: DMVFN's prepare scripts resize that way,
    and the result is the same per channel whatever the channel order (RGB here, BGR there).
    """
    width, height = size
    if image.shape[0] == height and image.shape[1] == width:
        return image
    return cv2.resize(image, (int(width), int(height)))


class FrameReader:
    """Reads frames (image paths or (video, index) pairs) as uint8 RGB at one size.

    `resize=(W, H)` resizes every frame at load (`resize_frame`), reading the prepared cache
    `<cache_root>/<W>x<H>/...` (`cached_frame_path`) where it exists; videos stay open between reads.
    """

    def __init__(self, root: Path | None = None, resize=None, cache_root: Path | None = None):
        self.root = Path(root) if root is not None else None
        self.resize = tuple(int(v) for v in resize) if resize else None
        self.cache_root = Path(cache_root) if cache_root is not None else (self.root / CACHE_DIR if self.root is not None else None)
        self.videos: dict = {}

    def video(self, video_path) -> VideoReader:
        reader = self.videos.get(video_path)
        if reader is None:
            reader = self.videos[video_path] = VideoReader(video_path)
        return reader

    def load_frame(self, frame) -> np.ndarray:
        """One frame as uint8 RGB (H, W, 3) at the reader's size: the prepared cache when present, else resized here."""
        if isinstance(frame, Path):
            if self.resize is not None and self.cache_root is not None and self.root is not None:
                cached = cached_frame_path(self.root, frame, self.resize, self.cache_root)
                if cached.is_file():
                    image = read_image(cached)
                    if image.shape[1::-1] != self.resize:
                        raise DataError(f"cached frame is {image.shape[1]}x{image.shape[0]}, expected "
                                        f"{self.resize[0]}x{self.resize[1]}: {cached} (delete it and rerun data_prep)")
                    return image
            image = read_image(frame)
        else:
            video_path, index = frame
            image = self.video(video_path).read(index)
        return resize_frame(image, self.resize) if self.resize is not None else image

    def load_frames(self, frames) -> np.ndarray:
        """The frames of one window as uint8 RGB (N, H, W, 3), at the reader's size (`load_frame`)."""
        images = [self.load_frame(frame) for frame in frames]
        shapes = {image.shape for image in images}
        if len(shapes) > 1:
            detail = ", ".join(f"{frame_label(f)} {im.shape[1]}x{im.shape[0]}" for f, im in zip(frames, images))
            raise DataError(f"frames of one sample differ in size: {detail}")
        return np.stack(images)


# ----------------------------------------------------------------------------- flows of a window
def flows_to_tensor(flows: list) -> torch.Tensor:
    """K flows (H, W, 2) -> one (2K, H, W) float tensor, x on even and y on odd channels."""
    return torch.from_numpy(np.concatenate(flows, axis=2)).permute(2, 0, 1).contiguous()


def stored_teacher_flow(root: Path, frames: list, context_frames: int, suffix: str) -> torch.Tensor:
    """The prepared teacher flow (2K,H,W) from the window's first target to each of its context frames."""
    k = context_frames
    return flows_to_tensor([read_flow(teacher_flow_path(root, frames[k], context, suffix)) for context in frames[:k]])


def synthetic_window_flow(clip_dir: Path, positions: list, context_frames: int,
                          size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact `gt_flow` (2K,H,W) from the first target to each context frame and `gt_valid` (K,H,W) of a synthetic clip.

    `size` (W, H): the flow of the frames resized to it (default: the clip's own size).
    """
    k = context_frames
    width, height = size if size is not None else (None, None)
    flows, valid = [], []
    for context_position in positions[:k]:
        flow, visible = synthetic_flow(clip_dir, positions[k], context_position, height, width)
        flows.append(flow)
        valid.append(visible)
    return flows_to_tensor(flows), torch.from_numpy(np.stack(valid)).float()


# ----------------------------------------------------------------------------- one sample
def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of sample `index` in `epoch`: the same in any worker, rank or reader."""
    return np.random.default_rng([seed, epoch, index])


def draw_time_reverse(augment: AugmentConfig | None, rng: np.random.Generator) -> bool:
    """Whether this sample is time-reversed (the first draw of its generator when augmenting)."""
    return augment is not None and rng.random() < augment.time_reverse


def reverse_window(items: list, context_frames: int, target_times) -> list:
    """Reverse a window in time. Extrapolation: the future becomes the context (predict the past).
    Interpolation windows are [contexts..., target]: only the contexts swap."""
    k = context_frames
    if target_times[0] < 1.0:
        return items[:k][::-1] + items[k:]
    return items[::-1]


def window_target_times(target_times, reverse: bool) -> list[float]:
    """Interpolation: a time-reversed target at t sits at 1 - t; extrapolation keeps its times."""
    if reverse and target_times[0] < 1.0:
        return [1.0 - t for t in target_times]
    return list(target_times)


def make_sample(images: np.ndarray, context_frames: int, target_times, name: str, flows: dict) -> dict:
    """The sample dict from uint8 frames (N, H, W, 3) [contexts..., targets...] and the window's flows.
    Synthetic `gt_flow` doubles as the teacher (exact flow)."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    sample = {
        "context": tensor[:context_frames],
        "target": tensor[context_frames:],
        "target_times": torch.tensor(target_times, dtype=torch.float32),
        "name": name,
    }
    if "gt_flow" in flows:
        sample["gt_flow"], sample["gt_valid"] = flows["gt_flow"], flows["gt_valid"]
        sample["teacher_flow"] = flows["gt_flow"].clone()
    elif "teacher_flow" in flows:
        sample["teacher_flow"] = flows["teacher_flow"]
    return sample


def check_flow_region(flow_region: str) -> str:
    """`flow_region` itself when it is one of `FLOW_REGIONS`; a `ValueError` naming them otherwise."""
    if flow_region not in FLOW_REGIONS:
        raise ValueError(f"flow_region must be one of {FLOW_REGIONS} (crop: DIS on the final crop; frame: on the full frame "
                         f"before augmentation), got {flow_region!r}")
    return flow_region


def sample_prior_flow(context: torch.Tensor, target_times: torch.Tensor) -> torch.Tensor:
    """The motion prior of one sample at its first target time: context (K,3,H,W), target_times (n,) -> (2K,H,W).

    `constant_velocity_prior` of the one-sample batch, so it equals what a `motion_prior="dis"`
    model computes from a batch of these samples at `target_times[:, 0]`, bit for bit.
    """
    return constant_velocity_prior(context.unsqueeze(0), target_times[:1], "dis")[0]


def add_dis_flows(sample: dict, teacher: bool, prior: bool) -> dict:
    """The sample with OpenCV DIS `teacher_flow` (target[0] -> each context frame) and/or `prior_flow`, both (2K,H,W)."""
    if teacher and "teacher_flow" not in sample:  # a window's exact or prepared flow comes first
        sample["teacher_flow"] = dis_teacher_flow(sample["context"], sample["target"][0])
    if prior:
        sample["prior_flow"] = sample_prior_flow(sample["context"], sample["target_times"])
    return sample


def finish_sample(sample: dict, augment: AugmentConfig | None, rng: np.random.Generator, teacher_on_the_fly: bool,
                  prior_flow: bool = False, flow_region: str = "crop") -> dict:
    """Paired augmentations (drawn from `rng`, after the time-reversal draw) and the DIS flows asked for.

    `teacher_on_the_fly`: DIS `teacher_flow`; `prior_flow`: the motion prior `prior_flow` at
    `target_times[0]` (`sample_prior_flow`). `flow_region` "crop" computes them on the final
    (augmented) sample; "frame" on the full frames before augmenting, which then crops, flips,
    transposes and resizes them with the frames (`augment.FLOW_KEYS`).
    """
    dis_now = check_flow_region(flow_region) == "frame"
    if dis_now:
        sample = add_dis_flows(sample, teacher_on_the_fly, prior_flow)
    if augment is not None:
        sample = apply_augment(sample, augment, rng)
    if not dis_now:
        sample = add_dis_flows(sample, teacher_on_the_fly, prior_flow)
    return sample


__all__ = [
    "CACHE_DIR", "FLOW_REGIONS", "FrameReader", "add_dis_flows", "cached_frame_path", "check_flow_region",
    "draw_time_reverse", "finish_sample", "flows_to_tensor", "make_sample", "resize_frame", "reverse_window", "sample_prior_flow",
    "sample_rng", "stored_teacher_flow", "synthetic_window_flow", "window_target_times",
]
