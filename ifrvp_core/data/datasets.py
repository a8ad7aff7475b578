"""Dataset readers: every source becomes a list of frame *windows* read by one Dataset class.

A window is K context frames followed by n target frames (file paths or video frame indices).
`WindowDataset` loads a window into the sample dict of docs/architecture.md, adds teacher flow
(from `<root>/teacher_flow/...`) or exact synthetic flow, applies time reversal at the window level
and the paired augmentations afterwards. Randomness comes from a generator seeded by
(seed, epoch, index), so a sample is the same whatever the worker or rank that loads it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ifrvp_core.data.augment import AugmentConfig, augment as apply_augment
from ifrvp_core.data.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, DataError, VideoReader, read_flow, read_image

TEACHER_DIR = "teacher_flow"
# False/"none": no teacher; True/"disk": prepared files, required; "auto": prepared files when present;
# "dis": OpenCV DIS on the fly; "auto_dis": prepared files when present, else DIS on the fly.
TEACHER_MODES = (False, "none", True, "disk", "auto", "dis", "auto_dis")
BAD_SAMPLE_MODES = ("fail", "skip")
MAX_REPLACEMENTS = 16  # a bad sample's replacements tried before giving up (each bad one is reported too)


def epoch_order(size: int, seed: int, epoch: int) -> list[int]:
    """The shuffled sample order of one epoch; it depends only on (seed, epoch).

    `ResumableSampler` draws its order from here, and `WindowDataset` replaces a bad sample by
    the next one in this order, so both agree without sharing any state.
    """
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()


@dataclass
class Window:
    """K context + n target frames. A frame is a Path or a (video path, frame index) pair."""

    frames: list
    name: str
    clip_dir: Path | None = None  # synthetic clip (exact flow)
    frame_indices: list = field(default_factory=list)  # positions inside the clip


def frame_label(frame) -> str:
    return str(frame) if isinstance(frame, Path) else f"{frame[0]}#{frame[1]}"


def teacher_flow_path(root: Path, target, context, suffix: str = ".flo") -> Path:
    """Where the teacher flow from frame `target` to frame `context` lives (a parallel tree)."""
    relative = target.parent.relative_to(root)
    return root / TEACHER_DIR / relative / f"{target.stem}_to_{context.stem}{suffix}"


class WindowDataset(Dataset):
    """Loads windows into samples: `context` (K,3,H,W), `target` (n,3,H,W), `target_times` (n,), ..."""

    def __init__(
        self,
        windows: list[Window],
        context_frames: int,
        target_times: list[float],
        root: Path | None = None,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        teacher_flow: bool | str = "auto",
        synthetic: bool = False,
        source: str = "frames",
        on_bad_sample: str = "fail",
    ):
        if not windows:
            raise DataError(f"no samples found for {source} under {root} (check the root, split and window sizes)")
        self.windows = windows
        self.context_frames = context_frames
        self.target_times = [float(t) for t in target_times]
        self.root = Path(root) if root is not None else None
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.synthetic = synthetic
        self.source = source
        self._videos: dict = {}
        if on_bad_sample not in BAD_SAMPLE_MODES:
            raise ValueError(f"on_bad_sample must be one of {BAD_SAMPLE_MODES}, got {on_bad_sample!r}")
        self.on_bad_sample = on_bad_sample
        self._order: tuple | None = None  # (epoch, epoch_order, position of each index in it): a cache of a pure function
        if teacher_flow not in TEACHER_MODES:
            raise ValueError(f"teacher_flow must be one of {TEACHER_MODES}, got {teacher_flow!r}")
        self.teacher_suffix = None
        on_disk = self.root is not None and isinstance(windows[0].frames[0], Path) and not synthetic
        if teacher_flow in (True, "disk", "auto", "auto_dis") and on_disk:
            self.teacher_suffix = self._find_teacher_suffix(windows[0])
        if teacher_flow in (True, "disk") and self.teacher_suffix is None and not synthetic:
            first = windows[0]
            where = teacher_flow_path(self.root, first.frames[context_frames], first.frames[0]) if on_disk else f"{root} (video files)"
            raise DataError(f"teacher flow requested but missing: {where}; prepare it with "
                            f"`python -m data_prep teacher_flow --dataset {source} --root {root}` or use teacher_flow='dis'")
        # DIS on the fly, computed on the final (augmented) sample from its real target
        self.teacher_on_the_fly = not synthetic and self.teacher_suffix is None and teacher_flow in ("dis", "auto_dis")

    @property
    def teacher_source(self) -> str:
        """Where `teacher_flow` comes from: ground truth, prepared files, DIS on the fly, or none."""
        if self.synthetic:
            return "synthetic ground truth"
        if self.teacher_suffix is not None:
            return f"prepared files ({self.root / TEACHER_DIR}/**/*{self.teacher_suffix})"
        return "DIS on the fly (target -> each context frame, on the training crop)" if self.teacher_on_the_fly else "none"

    def _find_teacher_suffix(self, window: Window):
        for suffix in (".flo", ".npy"):
            target, context = window.frames[self.context_frames], window.frames[0]
            if teacher_flow_path(self.root, target, context, suffix).is_file():
                return suffix
        return None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.windows)

    def sample_files(self, index: int) -> dict:
        window = self.windows[index]
        k = self.context_frames
        return {"context": [frame_label(f) for f in window.frames[:k]], "target": [frame_label(f) for f in window.frames[k:]]}

    def _read(self, frame) -> np.ndarray:
        if isinstance(frame, Path):
            return read_image(frame)
        video_path, index = frame
        reader = self._videos.get(video_path)
        if reader is None:
            reader = self._videos[video_path] = VideoReader(video_path)
        return reader.read(index)

    def _load_images(self, frames) -> torch.Tensor:
        images = [self._read(frame) for frame in frames]
        shapes = {image.shape for image in images}
        if len(shapes) > 1:
            detail = ", ".join(f"{frame_label(f)} {im.shape[1]}x{im.shape[0]}" for f, im in zip(frames, images))
            raise DataError(f"frames of one sample differ in size: {detail}")
        stacked = np.stack(images)  # (N, H, W, 3)
        return torch.from_numpy(stacked).permute(0, 3, 1, 2).float().div_(255.0)

    def __getitem__(self, index: int) -> dict:
        """The sample at `index`; see the class docstring. With `on_bad_sample="skip"` it also holds
        `skipped_files`: the files that failed to load (empty for a good sample).

        A sample whose files raise `DataError` is replaced by the next sample in this epoch's
        shuffled order (`epoch_order(len, seed, epoch)`), then the one after, up to
        `MAX_REPLACEMENTS`: the result depends only on (seed, epoch, index), not on DataLoader
        workers or ranks. With "fail" (the default, and always for evaluation) the error is raised.
        """
        if self.on_bad_sample == "fail":
            return self._load(index)
        skipped: list[str] = []
        candidate = index
        for attempt in range(1, MAX_REPLACEMENTS + 2):
            try:
                sample = self._load(candidate)
            except DataError as error:
                skipped.append(error.path or str(error))
                candidate = self.replacement_index(index, attempt)
                continue
            sample["skipped_files"] = skipped
            return sample
        raise DataError(f"sample {index} and its {MAX_REPLACEMENTS} replacements all failed to load: {', '.join(sorted(set(skipped)))}",
                        skipped[0])

    def replacement_index(self, index: int, attempt: int) -> int:
        """The sample `attempt` places after `index` in this epoch's shuffled order (wrapping round)."""
        if self._order is None or self._order[0] != self.epoch:
            order = epoch_order(len(self), self.seed, self.epoch)
            position = [0] * len(order)
            for place, item in enumerate(order):
                position[item] = place
            self._order = (self.epoch, order, position)
        _, order, position = self._order
        return order[(position[index] + attempt) % len(order)]

    def _load(self, index: int) -> dict:
        window = self.windows[index]
        k = self.context_frames
        rng = np.random.default_rng([self.seed, self.epoch, index])
        frames, positions = list(window.frames), list(window.frame_indices)
        target_times = self.target_times
        if self.augment is not None and rng.random() < self.augment.time_reverse:
            frames, positions = self._reverse(frames), self._reverse(positions)
            if target_times[0] < 1.0:  # interpolation: the target sits between the two newest frames
                target_times = [1.0 - t for t in target_times]
        images = self._load_images(frames)
        sample = {
            "context": images[:k],
            "target": images[k:],
            "target_times": torch.tensor(target_times, dtype=torch.float32),
            "name": window.name,
        }
        if self.synthetic:
            flows, valid = self._synthetic_flow(window.clip_dir, positions)
            sample["gt_flow"], sample["gt_valid"] = flows, valid
            sample["teacher_flow"] = flows.clone()
        elif self.teacher_suffix is not None:
            target = frames[k]
            parts = [read_flow(teacher_flow_path(self.root, target, c, self.teacher_suffix)) for c in frames[:k]]
            sample["teacher_flow"] = torch.from_numpy(np.concatenate(parts, axis=2)).permute(2, 0, 1).contiguous()
        if self.augment is not None:
            sample = apply_augment(sample, self.augment, rng)
        if self.teacher_on_the_fly:
            from ifrvp_core.motion_prior import dis_teacher_flow

            sample["teacher_flow"] = dis_teacher_flow(sample["context"], sample["target"][0])
        return sample

    def _reverse(self, items: list) -> list:
        """Reverse a window in time. Extrapolation: the future becomes the context (predict the past)."""
        k = self.context_frames
        if self.target_times[0] < 1.0:  # interpolation windows are [contexts..., target]
            return items[:k][::-1] + items[k:]
        return items[::-1]

    def _synthetic_flow(self, clip_dir: Path, positions: list):
        from ifrvp_core.data.synthetic import synthetic_flow

        k = self.context_frames
        flows, valid = [], []
        for context_position in positions[:k]:
            flow, visible = synthetic_flow(clip_dir, positions[k], context_position)
            flows.append(flow)
            valid.append(visible)
        flow = torch.from_numpy(np.concatenate(flows, axis=2)).permute(2, 0, 1).contiguous()
        return flow, torch.from_numpy(np.stack(valid)).float()


# ----------------------------------------------------------------------------- window builders
def sliding_windows(frames: list, span: int, stride: int, step: int, name_prefix: str, clip_dir=None, order=None):
    """All windows of `span` frames `stride` apart, starting every `step` frames."""
    windows = []
    length = (span - 1) * stride + 1
    for start in range(0, len(frames) - length + 1, step):
        positions = [start + i * stride for i in range(span)]
        picked = [frames[p] for p in positions]
        if order is not None:
            picked, positions = [picked[i] for i in order], [positions[i] for i in order]
        windows.append(Window(picked, f"{name_prefix}/{start:05d}", clip_dir, positions))
    return windows


def task_layout(task: str, context_frames: int, future_frames: int):
    """(span in frames, order of the picked frames as [contexts..., targets...], target times)."""
    if task == "extrapolate":
        return context_frames + future_frames, None, [1.0 + i for i in range(1, future_frames + 1)]
    if task == "interpolate":
        if future_frames != 1:
            raise ValueError("interpolation predicts one frame (future_frames=1)")
        # K contexts two frames apart, the target between the two newest: picked frames 0..2K-2 step 1
        span = 2 * context_frames - 1
        context_positions = list(range(0, span, 2))
        return span, context_positions + [span - 2], [0.5]
    raise ValueError(f"task must be 'extrapolate' or 'interpolate', got {task!r}")


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"list file not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def vimeo90k_windows(root: Path, split: str, span: int, order, variant: str | None = None):
    """Vimeo90K septuplet (`sep_*list.txt`, im1..im7) or triplet (`tri_*list.txt`, im1..im3).

    Train: every window that fits in a sequence. Test: the first window (im1, im2 -> im3 for
    K = 2 extrapolation; im1, im3 -> im2 for interpolation), the t+1 protocol.
    """
    if variant is None:
        variant = "septuplet" if (root / "sep_trainlist.txt").is_file() or (root / "sep_testlist.txt").is_file() else "triplet"
    prefix, count = {"septuplet": ("sep", 7), "triplet": ("tri", 3)}[variant]
    list_name = f"{prefix}_{'test' if split in ('test', 'val') else 'train'}list.txt"
    windows = []
    for entry in _read_list(root / list_name):
        folder = root / "sequences" / entry
        frames = [folder / f"im{i}.png" for i in range(1, count + 1)]
        found = sliding_windows(frames, span, 1, 1, entry, order=order)
        windows.extend(found[:1] if split in ("test", "val") else found)
    return windows


def gopro_windows(root: Path, split: str, span: int, order, stride: int, step: int | None):
    """GoPro `<split>/<sequence>/<frame>.png` (or `<sequence>/sharp/`), 240 fps; `stride` frames apart."""
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"GoPro split folder not found: {split_dir}")
    step = step or (stride if split == "train" else span * stride)
    windows = []
    for sequence in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        folder = sequence / "sharp" if (sequence / "sharp").is_dir() else sequence
        windows.extend(sliding_windows(list_images(folder), span, stride, step, sequence.name, order=order))
    return windows


CITYSCAPES_NAME = re.compile(r"^(?P<city>.+)_(?P<seq>\d+)_(?P<frame>\d+)_leftImg8bit\.png$")
CITYSCAPES_ANNOTATED = 19  # the 20th frame of each 30-frame snippet carries the fine annotation


def cityscapes_snippets(split_dir: Path) -> dict:
    """Group `<city>_<seq>_<frame>_leftImg8bit.png` into runs of consecutive frame numbers."""
    runs: dict = {}
    for city in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        by_sequence: dict = {}
        for path in city.iterdir():
            match = CITYSCAPES_NAME.match(path.name)
            if match:
                by_sequence.setdefault((match["city"], match["seq"]), []).append((int(match["frame"]), path))
        for (city_name, seq), items in sorted(by_sequence.items()):
            items.sort()
            current = [items[0]]
            for previous, item in zip(items, items[1:]):
                if item[0] != previous[0] + 1:
                    runs[f"{city_name}_{seq}_{current[0][0]:06d}"] = [p for _, p in current]
                    current = []
                current.append(item)
            runs[f"{city_name}_{seq}_{current[0][0]:06d}"] = [p for _, p in current]
    return runs


def cityscapes_windows(root: Path, split: str, span: int, order, context_frames: int, step: int | None):
    """Cityscapes `leftImg8bit_sequence/<split>/<city>/...`: 30-frame snippets at 17 fps.

    Evaluation (val/test): one window per snippet whose first target (t+1) is the annotated 20th
    frame; with 2 context + 5 future frames that is frames 18-19 -> 20-24 (1-based). Train:
    every window, every `step` frames.
    """
    split_dir = root / "leftImg8bit_sequence" / split
    if not split_dir.is_dir():
        raise DataError(f"Cityscapes split folder not found: {split_dir}")
    windows = []
    for name, frames in cityscapes_snippets(split_dir).items():
        if split == "train":
            windows.extend(sliding_windows(frames, span, 1, step or 1, name, order=order))
        else:
            start = max(0, min(CITYSCAPES_ANNOTATED - context_frames, len(frames) - span))
            if len(frames) >= span:
                picked = frames[start : start + span]
                picked = [picked[i] for i in order] if order is not None else picked
                windows.append(Window(picked, name, None, list(range(start, start + span))))
    return windows


def _clip_sources(root: Path) -> list:
    """A video file, a folder of frames, or a folder of clip folders / videos."""
    if root.is_file():
        if root.suffix.lower() not in VIDEO_SUFFIXES:
            raise DataError(f"not a video file (expected {', '.join(VIDEO_SUFFIXES)}): {root}")
        return [root]
    if not root.is_dir():
        raise DataError(f"frames root not found: {root}")
    if list_images(root):
        return [root]
    sources = sorted(p for p in root.iterdir() if (p.is_dir() and not p.name.startswith(".") and p.name != TEACHER_DIR) or p.suffix.lower() in VIDEO_SUFFIXES)
    if not sources:
        raise DataError(f"no frames, clip folders or videos under {root}")
    return sources


def frames_windows(root: Path, split: str, span: int, order, stride: int, step: int | None, test_fraction: float):
    """Sliding windows; the last `test_fraction` of every clip is the test part (never trained on)."""
    windows = []
    for source in _clip_sources(root):
        if source.is_file():
            frames = [(source, i) for i in range(VideoReader(source).num_frames)]
        else:
            frames = list_images(source)
        boundary = int(math.floor(len(frames) * (1.0 - test_fraction)))
        part = frames[:boundary] if split == "train" else frames[boundary:]
        name = source.stem if source.is_file() else source.name
        offset = 0 if split == "train" else boundary
        found = sliding_windows(part, span, stride, step or (1 if split == "train" else span), name, order=order)
        for window in found:
            window.frame_indices = [i + offset for i in window.frame_indices]
        windows.extend(found)
    return windows


def synthetic_windows(root: Path, split: str, span: int, order, step: int | None):
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"synthetic split folder not found: {split_dir} (run data_prep make_synthetic)")
    windows = []
    for clip in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        frames = list_images(clip)
        windows.extend(sliding_windows(frames, span, 1, step or (1 if split == "train" else span), clip.name, clip_dir=clip, order=order))
    return windows
