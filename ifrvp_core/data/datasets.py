"""Dataset readers: every source becomes a list of frame *windows* read by one Dataset class.

A window is K context frames followed by n target frames (file paths or video frame indices).
`WindowDataset` loads a window into the sample dict of docs/architecture.md, adds teacher flow
(from `<root>/teacher_flow/...`) or exact synthetic flow, applies time reversal at the window level
and the paired augmentations afterwards. Randomness comes from a generator seeded by
(seed, epoch, index), so a sample is the same whatever the worker or rank that loads it.

The steps of one sample are in `ifrvp_core.data.sample`, the windows of each dataset layout in
`ifrvp_core.data.layouts`; their names stay importable from here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ifrvp_core.data.augment import AugmentConfig
from ifrvp_core.data.io import DataError, SplitNotFoundError
from ifrvp_core.data.loader import EpochLoader, epoch_order, sampled_loader
from ifrvp_core.data.sample import (
    FrameReader,
    check_flow_region,
    draw_time_reverse,
    finish_sample,
    make_sample,
    reverse_window,
    sample_rng,
    stored_teacher_flow,
    synthetic_window_flow,
    window_target_times,
)
from ifrvp_core.data.teacher import (
    DEFAULT_TEACHER_MODE,
    TEACHER_DIR,
    describe_teacher_source,
    find_teacher_suffix,
    teacher_flow_path,
    teacher_mode,
)
from ifrvp_core.data.windows import Window, frame_label

# Names this module defined before the data package was split by concept; still importable from here.
from ifrvp_core.data.layouts import (  # noqa: F401
    CITYSCAPES_NAME, CITYSCAPES_SNIPPET, KITTI_CAMERAS, KITTI_TEST_DRIVES, KITTI_TRAIN_DRIVES, UCF101_CLIP, UCF101_LISTS,
    UCF101_MAX_STRIDE, cityscapes_snippets, cityscapes_windows, davis17_video_folders, davis17_windows, frames_windows, gopro_windows,
    kitti_clips, kitti_drive_dir, kitti_frame_folders, kitti_windows, synthetic_windows, ucf101_video_root, ucf101_windows,
    vimeo90k_windows,
)
from ifrvp_core.data.sample import CACHE_DIR, cached_frame_path, resize_frame  # noqa: F401
from ifrvp_core.data.teacher import TEACHER_MODES  # noqa: F401
from ifrvp_core.data.windows import (  # noqa: F401
    PROTOCOL_CLIP, PROTOCOL_FIRST_TARGET, list_images, protocol_window, sliding_windows, task_layout,
)

BAD_SAMPLE_MODES = ("fail", "skip")
MAX_REPLACEMENTS = 16  # a bad sample's replacements tried before giving up (each bad one is reported too)


def random_stride_positions(total: int, span: int, offset: int, clip_length: int, max_stride: int, rng: np.random.Generator) -> list[int]:
    """Frame positions of a random-stride sample in a video of `total` frames (DMVFN's UCF101 reader).

    Stride s in 1..min(max_stride, total // clip_length), a clip of `clip_length` frames s apart
    starting in [0, total - (clip_length - 1) s), and the sample is the `span` frames at `offset`
    inside that clip. Draws the stride, then the start, from `rng`.
    """
    longest = min(max_stride, total // clip_length)
    stride = int(rng.integers(1, longest + 1))
    start = int(rng.integers(0, total - (clip_length - 1) * stride))
    return [start + (offset + i) * stride for i in range(span)]


class WindowDataset(Dataset):
    """Loads windows into samples: `context` (K,3,H,W), `target` (n,3,H,W), `target_times` (n,), ...

    `resize=(W, H)` resizes every frame at load (`resize_frame`), reading the prepared cache
    `<cache_root>/<W>x<H>/...` where it exists (`FrameReader`); windows with a `video` (UCF101
    training) draw their frames per sample (`draw_frames`). `prior_flow=True` adds the motion
    prior `prior_flow` (2K,H,W) at `target_times[0]` to every sample; `flow_region` ("crop" or
    "frame") is where it and the on-the-fly DIS teacher are computed (`sample.finish_sample`).
    """

    def __init__(
        self,
        windows: list[Window],
        context_frames: int,
        target_times: list[float],
        root: Path | None = None,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        teacher_flow: bool | str = DEFAULT_TEACHER_MODE,
        synthetic: bool = False,
        source: str = "frames",
        resize=None,
        cache_root: Path | None = None,
        max_stride: int = 0,
        clip_length: int = 0,
        on_bad_sample: str = "fail",
        prior_flow: bool = False,
        flow_region: str = "crop",
    ):
        if not windows:
            raise SplitNotFoundError(f"no samples found for {source} under {root} (check the root, split and window sizes)")
        self.windows = windows
        self.context_frames = context_frames
        self.target_times = [float(t) for t in target_times]
        self.root = Path(root) if root is not None else None
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.synthetic = synthetic
        self.source = source
        # every frame is resized to (W, H) at load; a prepared cache (`data_prep prepare_*`) is read when present
        self.reader = FrameReader(self.root, resize, cache_root)
        # random-stride windows (UCF101 training): a `clip_length`-frame clip at a stride drawn in 1..max_stride
        self.max_stride, self.clip_length = int(max_stride), int(clip_length)
        if on_bad_sample not in BAD_SAMPLE_MODES:
            raise ValueError(f"on_bad_sample must be one of {BAD_SAMPLE_MODES}, got {on_bad_sample!r}")
        self.on_bad_sample = on_bad_sample
        self.prior_flow = bool(prior_flow)  # samples carry `prior_flow` (DIS in the loader workers, not the training step)
        self.flow_region = check_flow_region(flow_region)
        self._order: tuple | None = None  # (epoch, epoch_order, position of each index in it): a cache of a pure function
        self._find_teacher_flow(teacher_flow)

    def _find_teacher_flow(self, teacher_flow) -> None:
        """Set `teacher_suffix` (prepared flow files) and `teacher_on_the_fly` (DIS) from the `teacher_flow` mode."""
        mode = teacher_mode(teacher_flow)
        first, k = self.windows[0], self.context_frames
        on_disk = self.root is not None and bool(first.frames) and isinstance(first.frames[0], Path) and not self.synthetic
        self.teacher_suffix = find_teacher_suffix(self.root, first.frames[k], first.frames[0]) if mode.stored and on_disk else None
        if mode.required and self.teacher_suffix is None and not self.synthetic:
            where = teacher_flow_path(self.root, first.frames[k], first.frames[0]) if on_disk else f"{self.root} (video files)"
            raise DataError(f"teacher flow requested but missing: {where}; prepare it with "
                            f"`ifrvp prep teacher_flow --dataset {self.source} --data_root {self.root}` or use teacher_flow='dis'")
        # DIS on the fly, computed on the final (augmented) sample from its real target
        self.teacher_on_the_fly = not self.synthetic and self.teacher_suffix is None and mode.dis
        # synthetic clips inside a folder of clips (`frames`): their exact flow is the teacher, like prepared flow
        self.scene_teacher = (not self.synthetic and mode.stored and self.teacher_suffix is None
                              and any(window.clip_dir is not None for window in self.windows))

    @property
    def teacher_source(self) -> str:
        """Where `teacher_flow` comes from: ground truth, prepared files, DIS on the fly, or none."""
        stored = f"{self.root / TEACHER_DIR}/**/*{self.teacher_suffix}" if self.teacher_suffix is not None else None
        source = describe_teacher_source(self.synthetic, stored, self.teacher_on_the_fly, self.flow_region)
        if self.scene_teacher:
            clips = len({window.clip_dir for window in self.windows if window.clip_dir is not None})
            return f"exact flow of the {clips} synthetic clips (their scene.json); elsewhere {source}"
        return source

    @property
    def resize(self):
        """(W, H) every frame is resized to at load, or None (native size)."""
        return self.reader.resize

    @property
    def cache_root(self) -> Path | None:
        """Where the prepared resized frames are looked for (`<root>/ifrvp_cache` by default)."""
        return self.reader.cache_root

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.windows)

    def loader(self, batch_size: int, shuffle: bool, num_workers: int, seed: int, rank: int, world_size: int) -> EpochLoader:
        """This dataset's loader (`make_loader`): a seeded DataLoader over a `ResumableSampler`."""
        return sampled_loader(self, batch_size, shuffle, num_workers, seed, rank, world_size)

    def sample_files(self, index: int) -> dict:
        """{"context": [K labels], "target": [n labels]}: the source files (or `video#frame`) of sample `index`.

        Random-stride windows give the frames drawn for the current epoch (`set_epoch`).
        """
        window = self.windows[index]
        frames = self.draw_frames(window, index)[0] if window.video is not None else window.frames
        k = self.context_frames
        return {"context": [frame_label(f) for f in frames[:k]], "target": [frame_label(f) for f in frames[k:]]}

    def draw_frames(self, window: Window, index: int):
        """A random-stride sample: (frames, positions) drawn from (seed, epoch, index) only (`random_stride_positions`).

        Its own generator stream, so `sample_files` names the same frames `__getitem__` loads.
        """
        total = self.reader.video(window.video).num_frames
        if total < self.clip_length:
            raise DataError(f"video has {total} frames, fewer than the {self.clip_length} a training clip needs: {window.video}")
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        span = self.context_frames + len(self.target_times)
        positions = random_stride_positions(total, span, window.offset, self.clip_length, self.max_stride, rng)
        return [(window.video, p) for p in positions], positions

    def load_frame(self, frame) -> np.ndarray:
        """One frame as uint8 RGB (H, W, 3) at the dataset's size: the prepared cache when present, else resized here."""
        return self.reader.load_frame(frame)

    def load_frames(self, frames) -> np.ndarray:
        """The frames of one window as uint8 RGB (N, H, W, 3), at the dataset's size (`load_frame`)."""
        return self.reader.load_frames(frames)

    def window_layout(self, index: int, reverse: bool = False) -> tuple[list, list, list[float]]:
        """(frames, positions in the clip, target times) of window `index`, time-reversed on request."""
        window = self.windows[index]
        if window.video is not None:  # random-stride window: frames drawn from (seed, epoch, index)
            frames, positions = self.draw_frames(window, index)
        else:
            frames, positions = list(window.frames), list(window.frame_indices)
        if reverse:
            frames = reverse_window(frames, self.context_frames, self.target_times)
            positions = reverse_window(positions, self.context_frames, self.target_times)
        return frames, positions, window_target_times(self.target_times, reverse)

    def load_flows(self, index: int, reverse: bool = False, layout: tuple | None = None) -> dict:
        """The flows stored for window `index` (time-reversed on request), before augmentation:
        synthetic `gt_flow` (2K,H,W) / `gt_valid` (K,H,W), or prepared `teacher_flow` (2K,H,W), or (a synthetic
        clip inside a `frames` folder) its exact flow as `teacher_flow`; {} when none.

        `layout`: the window's `window_layout(index, reverse)` when the caller has it already.
        """
        frames, positions, _ = layout if layout is not None else self.window_layout(index, reverse)
        if self.synthetic:
            flows, valid = synthetic_window_flow(self.windows[index].clip_dir, positions, self.context_frames)
            return {"gt_flow": flows, "gt_valid": valid}
        if self.teacher_suffix is not None:
            return {"teacher_flow": stored_teacher_flow(self.root, frames, self.context_frames, self.teacher_suffix)}
        if self.scene_teacher and self.windows[index].clip_dir is not None:
            flows, _ = synthetic_window_flow(self.windows[index].clip_dir, positions, self.context_frames, self.resize)
            return {"teacher_flow": flows}  # the teacher only: a batch mixes these windows with real footage's
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
        return finish_sample(self.raw_sample(index, reverse), self.augment, rng, self.teacher_on_the_fly, self.prior_flow, self.flow_region)

