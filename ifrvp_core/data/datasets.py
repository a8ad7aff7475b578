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
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
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
    video: Path | None = None  # random-stride windows (UCF101 training): frames are drawn per sample from this video
    offset: int = 0  # random-stride windows: where the sample starts inside its drawn clip


def frame_label(frame) -> str:
    return str(frame) if isinstance(frame, Path) else f"{frame[0]}#{frame[1]}"


CACHE_DIR = "ifrvp_cache"


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


def describe_teacher_source(synthetic: bool, stored: str | None, on_the_fly: bool) -> str:
    """Where a reader's `teacher_flow` comes from, as the trainer logs it (`stored`: where prepared flow lives)."""
    if synthetic:
        return "synthetic ground truth"
    if stored is not None:
        return f"prepared files ({stored})"
    return "DIS on the fly (target -> each context frame, on the training crop)" if on_the_fly else "none"


def teacher_flow_path(root: Path, target, context, suffix: str = ".flo") -> Path:
    """Where the teacher flow from frame `target` to frame `context` lives (a parallel tree)."""
    relative = target.parent.relative_to(root)
    return root / TEACHER_DIR / relative / f"{target.stem}_to_{context.stem}{suffix}"


class WindowDataset(Dataset):
    """Loads windows into samples: `context` (K,3,H,W), `target` (n,3,H,W), `target_times` (n,), ...

    `resize=(W, H)` resizes every frame at load (`resize_frame`), reading the prepared cache
    `<cache_root>/<W>x<H>/...` where it exists; windows with a `video` (UCF101 training) draw their
    frames per sample (`_draw_frames`).
    """

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
        resize=None,
        cache_root: Path | None = None,
        max_stride: int = 0,
        clip_length: int = 0,
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
        # every frame is resized to (W, H) at load; a prepared cache (`data_prep prepare_*`) is read when present
        self.resize = tuple(int(v) for v in resize) if resize else None
        self.cache_root = Path(cache_root) if cache_root is not None else (self.root / CACHE_DIR if self.root is not None else None)
        # random-stride windows (UCF101 training): a `clip_length`-frame clip at a stride drawn in 1..max_stride
        self.max_stride, self.clip_length = int(max_stride), int(clip_length)
        if on_bad_sample not in BAD_SAMPLE_MODES:
            raise ValueError(f"on_bad_sample must be one of {BAD_SAMPLE_MODES}, got {on_bad_sample!r}")
        self.on_bad_sample = on_bad_sample
        self._order: tuple | None = None  # (epoch, epoch_order, position of each index in it): a cache of a pure function
        if teacher_flow not in TEACHER_MODES:
            raise ValueError(f"teacher_flow must be one of {TEACHER_MODES}, got {teacher_flow!r}")
        self.teacher_suffix = None
        on_disk = self.root is not None and bool(windows[0].frames) and isinstance(windows[0].frames[0], Path) and not synthetic
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
        stored = f"{self.root / TEACHER_DIR}/**/*{self.teacher_suffix}" if self.teacher_suffix is not None else None
        return describe_teacher_source(self.synthetic, stored, self.teacher_on_the_fly)

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
        """{"context": [K labels], "target": [n labels]}: the source files (or `video#frame`) of sample `index`.

        Random-stride windows give the frames drawn for the current epoch (`set_epoch`).
        """
        window = self.windows[index]
        frames = self._draw_frames(window, index)[0] if window.video is not None else window.frames
        k = self.context_frames
        return {"context": [frame_label(f) for f in frames[:k]], "target": [frame_label(f) for f in frames[k:]]}

    def _video(self, video_path) -> VideoReader:
        reader = self._videos.get(video_path)
        if reader is None:
            reader = self._videos[video_path] = VideoReader(video_path)
        return reader

    def _draw_frames(self, window: Window, index: int):
        """A random-stride sample: (frames, positions) drawn from (seed, epoch, index) only.

        As DMVFN's UCF101 reader: stride s in 1..min(max_stride, n // clip_length), a clip of
        `clip_length` frames s apart starting in [0, n - (clip_length - 1) s), and the sample is the
        `span` frames at `window.offset` inside that clip. Its own generator stream, so
        `sample_files` names the same frames `__getitem__` loads.
        """
        total = self._video(window.video).num_frames
        span = self.context_frames + len(self.target_times)
        if total < self.clip_length:
            raise DataError(f"video has {total} frames, fewer than the {self.clip_length} a training clip needs: {window.video}")
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        longest = min(self.max_stride, total // self.clip_length)
        stride = int(rng.integers(1, longest + 1))
        start = int(rng.integers(0, total - (self.clip_length - 1) * stride))
        positions = [start + (window.offset + i) * stride for i in range(span)]
        return [(window.video, p) for p in positions], positions

    def load_frame(self, frame) -> np.ndarray:
        """One frame as uint8 RGB (H, W, 3) at the dataset's size: the prepared cache when present, else resized here."""
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
            image = self._video(video_path).read(index)
        return resize_frame(image, self.resize) if self.resize is not None else image

    def load_frames(self, frames) -> np.ndarray:
        """The frames of one window as uint8 RGB (N, H, W, 3), at the dataset's size (`load_frame`)."""
        images = [self.load_frame(frame) for frame in frames]
        shapes = {image.shape for image in images}
        if len(shapes) > 1:
            detail = ", ".join(f"{frame_label(f)} {im.shape[1]}x{im.shape[0]}" for f, im in zip(frames, images))
            raise DataError(f"frames of one sample differ in size: {detail}")
        return np.stack(images)

    def window_layout(self, index: int, reverse: bool = False) -> tuple[list, list, list[float]]:
        """(frames, positions in the clip, target times) of window `index`, time-reversed on request."""
        window = self.windows[index]
        if window.video is not None:  # random-stride window: frames drawn from (seed, epoch, index)
            frames, positions = self._draw_frames(window, index)
        else:
            frames, positions = list(window.frames), list(window.frame_indices)
        if reverse:
            frames = reverse_window(frames, self.context_frames, self.target_times)
            positions = reverse_window(positions, self.context_frames, self.target_times)
        return frames, positions, window_target_times(self.target_times, reverse)

    def load_flows(self, index: int, reverse: bool = False, layout: tuple | None = None) -> dict:
        """The flows stored for window `index` (time-reversed on request), before augmentation:
        synthetic `gt_flow` (2K,H,W) / `gt_valid` (K,H,W), or prepared `teacher_flow` (2K,H,W); {} when none.

        `layout`: the window's `window_layout(index, reverse)` when the caller has it already.
        """
        frames, positions, _ = layout if layout is not None else self.window_layout(index, reverse)
        k = self.context_frames
        if self.synthetic:
            flows, valid = self._synthetic_flow(self.windows[index].clip_dir, positions)
            return {"gt_flow": flows, "gt_valid": valid}
        if self.teacher_suffix is not None:
            parts = [read_flow(teacher_flow_path(self.root, frames[k], c, self.teacher_suffix)) for c in frames[:k]]
            return {"teacher_flow": torch.from_numpy(np.concatenate(parts, axis=2)).permute(2, 0, 1).contiguous()}
        return {}

    def raw_sample(self, index: int, reverse: bool = False) -> dict:
        """Window `index` as an un-augmented sample (time-reversed on request)."""
        layout = self.window_layout(index, reverse)  # once: random-stride windows draw their frames here
        frames, _, target_times = layout
        return make_sample(self.load_frames(frames), self.context_frames, target_times, self.windows[index].name,
                           self.load_flows(index, reverse, layout))

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
        rng = sample_rng(self.seed, self.epoch, index)
        reverse = draw_time_reverse(self.augment, rng)
        return finish_sample(self.raw_sample(index, reverse), self.augment, rng, self.teacher_on_the_fly)

    def _reverse(self, items: list) -> list:
        return reverse_window(items, self.context_frames, self.target_times)

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


# ----------------------------------------------------------------------------- one sample
# Shared by every reader (folders, videos, WebDataset shards), so a sample is built, reversed in
# time and augmented by the same code whatever the storage.
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


def finish_sample(sample: dict, augment: AugmentConfig | None, rng: np.random.Generator, teacher_on_the_fly: bool) -> dict:
    """Paired augmentations (drawn from `rng`, after the time-reversal draw), then DIS teacher flow on the fly."""
    if augment is not None:
        sample = apply_augment(sample, augment, rng)
    if teacher_on_the_fly:
        from ifrvp_core.motion_prior import dis_teacher_flow

        sample["teacher_flow"] = dis_teacher_flow(sample["context"], sample["target"][0])
    return sample


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
    other = ("tri" if prefix == "sep" else "sep") + list_name[3:]
    if not (root / list_name).is_file() and (root / other).is_file():
        # a septuplet root given to the (triplet) vimeo90k protocol, or the other way round
        here, use = ("septuplet", "vimeo90k_septuplet") if prefix == "tri" else ("triplet", "vimeo90k")
        raise DataError(f"list file not found: {root / list_name}; this root holds the {here} lists ({other}): "
                        f"the {variant} set is needed here (for this root use --protocol {use})")
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
CITYSCAPES_SNIPPET = 30  # frames per snippet (17 fps); the 20th carries the fine annotation
# The published prediction protocols (Cityscapes, KITTI, DAVIS) score a 9-frame clip: context 2, 3, targets 4..8.
PROTOCOL_CLIP = 9
PROTOCOL_FIRST_TARGET = 4


def protocol_window(clip: list, context_frames: int, future_frames: int, name: str) -> Window:
    """The test window of a published clip: context = clip[4-K .. 3], targets = clip[4 .. 3+n].

    With K = 2 that is frames 2, 3 -> 4, 5, ... (0-based), DMVFN's `model.eval`; a model with more
    context frames gets the frames before them.
    """
    first = PROTOCOL_FIRST_TARGET - context_frames
    if first < 0:
        raise ValueError(f"the protocol's first target is frame {PROTOCOL_FIRST_TARGET}: at most "
                         f"{PROTOCOL_FIRST_TARGET} context frames fit before it, got {context_frames}")
    last = PROTOCOL_FIRST_TARGET + future_frames
    if last > len(clip):
        raise ValueError(f"clip {name} has {len(clip)} frames: targets {PROTOCOL_FIRST_TARGET}..{last - 1} do not fit "
                         f"(at most {len(clip) - PROTOCOL_FIRST_TARGET} future frames)")
    return Window(list(clip[first:last]), name, None, list(range(first, last)))


def _extrapolation_only(order, dataset: str, split: str) -> None:
    if order is not None:
        raise ValueError(f"the {dataset} {split} protocol is extrapolation (context 2, 3 -> targets 4..8); use task='extrapolate'")


def cityscapes_snippets(split_dir: Path) -> dict:
    """{snippet name: 30 paths}: each city's files sorted by name and cut into consecutive runs of 30.

    That is how DMVFN's `utils/prepare_city.py` builds its snippets. On the published data each run
    is one sequence with 30 consecutive frame numbers; a run that is not (a missing or extra file
    would shift every later snippet of the city) raises `DataError` naming the files.
    """
    snippets: dict = {}
    for city in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        files = sorted((p for p in city.iterdir() if CITYSCAPES_NAME.match(p.name)), key=lambda p: p.name)
        if len(files) % CITYSCAPES_SNIPPET:
            raise DataError(f"{city} holds {len(files)} *_leftImg8bit.png frames, not a multiple of {CITYSCAPES_SNIPPET}: "
                            "snippets would be cut at the wrong frames (run `python -m data_prep verify --dataset cityscapes`)")
        for start in range(0, len(files), CITYSCAPES_SNIPPET):
            run = files[start : start + CITYSCAPES_SNIPPET]
            first, last = CITYSCAPES_NAME.match(run[0].name), CITYSCAPES_NAME.match(run[-1].name)
            consecutive = first["seq"] == last["seq"] and int(last["frame"]) - int(first["frame"]) == CITYSCAPES_SNIPPET - 1
            if not consecutive:
                raise DataError(f"files {run[0].name} .. {run[-1].name} of {city} are not one 30-frame snippet "
                                "(a frame is missing or extra)")
            snippets[f"{first['city']}_{first['seq']}_{int(first['frame']):06d}"] = run
    return snippets


def cityscapes_windows(root: Path, split: str, span: int, order, context_frames: int, step: int | None):
    """Cityscapes `leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`: 30-frame snippets.

    Evaluation (val/test): one window per snippet, frames 2, 3 -> 4..8 (0-based, DMVFN's
    protocol; `protocol_window`). Train: every window of `span` consecutive frames inside a
    snippet, every `step` frames (DMVFN trains on every consecutive triplet).
    """
    split_dir = root / "leftImg8bit_sequence" / split
    if not split_dir.is_dir():
        raise DataError(f"Cityscapes split folder not found: {split_dir}")
    windows = []
    for name, frames in cityscapes_snippets(split_dir).items():
        if split == "train":
            windows.extend(sliding_windows(frames, span, 1, step or 1, name, order=order))
        else:
            _extrapolation_only(order, "cityscapes", split)
            windows.append(protocol_window(frames, context_frames, span - context_frames, name))
    return windows


# KITTI raw, the split of FVS (Wu et al., CVPR 2020) that OPT and DMVFN reuse.
KITTI_TEST_DRIVES = ("2011_09_26_drive_0060", "2011_09_26_drive_0084", "2011_09_26_drive_0093", "2011_09_26_drive_0096")
KITTI_TRAIN_DRIVES = tuple(f"2011_09_26_drive_{n:04d}" for n in (1, 2, 5, 9, 11, 13, 14, 17, 18, 48, 51, 56, 57, 59, 91, 95, 104, 106, 113, 117)) + (
    "2011_09_28_drive_0001", "2011_09_28_drive_0002", "2011_09_29_drive_0026", "2011_09_29_drive_0071")
KITTI_CAMERAS = {"train": ("image_02", "image_03"), "test": ("image_02",)}


def kitti_drive_dir(root: Path, drive: str) -> Path:
    """`<root>/<date>/<drive>_sync` (the raw download's layout), or `<root>/<drive>_sync`."""
    flat = root / f"{drive}_sync"
    return flat if flat.is_dir() else root / drive[:10] / f"{drive}_sync"


def kitti_frame_folders(root: Path, split: str) -> list[tuple[str, str, Path]]:
    """[(drive, camera, `<drive dir>/<camera>/data`)] of the split's FVS drives, whether present or not."""
    if split not in KITTI_CAMERAS:
        raise ValueError(f"KITTI splits are 'train' and 'test', got {split!r}")
    drives = KITTI_TRAIN_DRIVES if split == "train" else KITTI_TEST_DRIVES
    return [(drive, camera, kitti_drive_dir(root, drive) / camera / "data") for drive in drives for camera in KITTI_CAMERAS[split]]


def kitti_clips(root: Path, split: str) -> list[tuple[str, list[Path]]]:
    """[(name, 9 frames)]: a 9-frame clip centred on every frame of every drive and camera of the split.

    As DMVFN's `utils/prepare_kitti.py`: a drive of N frames gives N - 8 clips (centres 4..N-5), so
    the four test drives (78, 383, 433, 475 frames) give 1,337 clips.
    """
    folders = kitti_frame_folders(root, split)
    clips, missing = [], []
    for drive, camera, folder in folders:
        if not folder.is_dir():
            missing.append(folder)
            continue
        frames = list_images(folder)
        for start in range(len(frames) - PROTOCOL_CLIP + 1):
            clips.append((f"{drive}/{camera}/{frames[start + PROTOCOL_FIRST_TARGET].stem}", frames[start : start + PROTOCOL_CLIP]))
    if missing and (split == "test" or len(missing) == len(folders)):
        raise DataError(f"KITTI {split} drive folder(s) not found: {', '.join(str(m) for m in missing[:4])}"
                        + (f" and {len(missing) - 4} more" if len(missing) > 4 else ""))
    if missing:
        warnings.warn(f"KITTI train: {len(missing)} of {len(folders)} drive/camera folders missing, e.g. {missing[0]}")
    return clips


def kitti_windows(root: Path, split: str, span: int, order, context_frames: int):
    """KITTI raw `<date>/<date>_drive_<NNNN>_sync/image_0{2,3}/data/<10 digits>.png`, 9-frame clips.

    Test: the four FVS test drives (image_02), one window per clip, frames 2, 3 -> 4..8.
    Train: the 24 other FVS drives, image_02 and image_03, every `span`-frame window inside each
    9-frame clip (DMVFN trains on every consecutive triplet of a clip).
    """
    windows = []
    for name, clip in kitti_clips(root, split):
        if split == "train":
            windows.extend(sliding_windows(clip, span, 1, 1, name, order=order))
        else:
            _extrapolation_only(order, "kitti", split)
            windows.append(protocol_window(clip, context_frames, span - context_frames, name))
    return windows


def davis17_video_folders(root: Path, split: str) -> list[tuple[str, Path]]:
    """[(video, `JPEGImages/480p/<video>`)] of `ImageSets/2017/<split>.txt`, whether present or not."""
    return [(video, root / "JPEGImages" / "480p" / video) for video in _read_list(root / "ImageSets" / "2017" / f"{split}.txt")]


def davis17_windows(root: Path, split: str, span: int, order, context_frames: int, step: int | None):
    """DAVIS 2017 `JPEGImages/480p/<video>/00000.jpg` with `ImageSets/2017/<split>.txt`.

    val (the protocol): the 30 videos of `val.txt`, their first 9 frames, frames 2, 3 -> 4..8.
    train: `train.txt`, every `span`-frame window.
    """
    if split not in ("train", "val"):
        raise ValueError(f"DAVIS 2017 splits are 'train' and 'val' (the protocol), got {split!r}")
    windows = []
    for video, folder in davis17_video_folders(root, split):
        if not folder.is_dir():
            raise DataError(f"DAVIS video folder not found: {folder} (listed in ImageSets/2017/{split}.txt)")
        frames = list_images(folder)
        if split == "train":
            windows.extend(sliding_windows(frames, span, 1, step or 1, video, order=order))
        else:
            _extrapolation_only(order, "davis17", split)
            if len(frames) < PROTOCOL_CLIP:
                raise DataError(f"DAVIS video {folder} has {len(frames)} frames; the protocol needs its first {PROTOCOL_CLIP}")
            windows.append(protocol_window(frames[:PROTOCOL_CLIP], context_frames, span - context_frames, video))
    return windows


UCF101_LISTS = {"train": "trainlist01.txt", "test": "testlist01.txt"}
UCF101_CLIP = 10  # DMVFN's UCF101 training clip: 10 frames at a random stride 1..5
UCF101_MAX_STRIDE = 5


def ucf101_video_root(root: Path) -> Path:
    """The folder holding `<Class>/v_<Class>_gXX_cYY.avi`: `root` itself or `root/UCF-101` (the archive's folder)."""
    return root / "UCF-101" if (root / "UCF-101").is_dir() else root


def ucf101_windows(root: Path, split: str, span: int, order):
    """UCF101 `<Class>/v_<Class>_gXX_cYY.avi` with `ucfTrainTestlist/trainlist01.txt` / `testlist01.txt`.

    Train: per video, `UCF101_CLIP - span + 1` samples (every `span`-frame position inside a
    10-frame clip, as DMVFN trains on every triplet of it); the clip's stride (1..5) and start are
    drawn per sample in `WindowDataset._draw_frames`. Test: the first `span` frames of each video.
    """
    if split not in UCF101_LISTS:
        raise ValueError(f"UCF101 splits are 'train' and 'test', got {split!r}")
    if span > UCF101_CLIP:
        raise ValueError(f"UCF101 training clips hold {UCF101_CLIP} frames; a window of {span} does not fit")
    if split == "train" and order is not None:
        raise ValueError("UCF101 training (random-stride clips) is for prediction: use task='extrapolate'")
    video_root = ucf101_video_root(root)
    entries = [line.split()[0] for line in _read_list(root / "ucfTrainTestlist" / UCF101_LISTS[split])]
    videos = [video_root / entry for entry in entries]
    missing = [v for v in videos if not v.is_file()]
    if missing:
        raise DataError(f"{len(missing)} UCF101 video(s) of {UCF101_LISTS[split]} not found, e.g. {missing[0]}")
    windows = []
    for video in videos:
        if split == "train":
            for offset in range(UCF101_CLIP - span + 1):
                windows.append(Window([], f"{video.stem}/{offset}", video=video, offset=offset))
        else:
            found = sliding_windows([(video, i) for i in range(span)], span, 1, span, video.stem, order=order)
            windows.extend(found)
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
