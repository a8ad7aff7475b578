"""Frame windows: what every dataset layout is turned into before any pixel is read.

A window is K context frames followed by n target frames (file paths or (video, frame index)
pairs), with its name and the frames' positions inside their clip. The layout builders
(`ifrvp_core.data.layouts`) make windows with `sliding_windows` and `protocol_window`;
`task_layout` says how many frames a window spans and in which order they are picked.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ifrvp_core.data.io import IMAGE_SUFFIXES, DataError, SplitNotFoundError

# The published prediction protocols (Cityscapes, KITTI, DAVIS) score a 9-frame clip: context 2, 3, targets 4..8.
PROTOCOL_CLIP = 9
PROTOCOL_FIRST_TARGET = 4


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


def list_images(folder: Path) -> list[Path]:
    """The image files of `folder` (by suffix, hidden files left out), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def read_list(path: Path) -> list[str]:
    """The non-empty lines of a list file (stripped); `DataError` naming it when it is missing."""
    if not path.is_file():
        raise DataError(f"list file not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_split_list(path: Path) -> list[str]:
    """`read_list` of the file that lists a split's entries: `SplitNotFoundError` when it is missing."""
    if not path.is_file():
        raise SplitNotFoundError(f"list file not found: {path}")
    return read_list(path)


__all__ = ["PROTOCOL_CLIP", "PROTOCOL_FIRST_TARGET", "Window", "frame_label", "list_images", "protocol_window", "read_list",
           "read_split_list", "sliding_windows", "task_layout"]
