"""Dataset layouts: the windows of every supported dataset, built from its files on disk.

One public builder per layout (`vimeo90k_windows`, `gopro_windows`, `cityscapes_windows`,
`kitti_windows`, `davis17_windows`, `ucf101_windows`, `frames_windows`, `synthetic_windows`),
plus the folder and list helpers that `data_prep` (prepare_*, verify) shares with them, so every
tool walks a layout the same way the readers do. Nothing here reads pixels.
"""
from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

from ifrvp_core.data.io import VIDEO_SUFFIXES, DataError, SplitNotFoundError, VideoReader
from ifrvp_core.data.synthetic_scene import SCENE_FILE
from ifrvp_core.data.teacher import TEACHER_DIR
from ifrvp_core.data.windows import (
    PROTOCOL_CLIP,
    PROTOCOL_FIRST_TARGET,
    Window,
    list_images,
    protocol_window,
    read_split_list,
    sliding_windows,
)


def vimeo90k_sequence_frames(root: Path, entry: str, count: int) -> list[Path]:
    """The frames `sequences/<entry>/im1.png .. im<count>.png` of one Vimeo90K sequence (7 septuplet, 3 triplet)."""
    folder = root / "sequences" / entry
    return [folder / f"im{i}.png" for i in range(1, count + 1)]


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
    for entry in read_split_list(root / list_name):
        found = sliding_windows(vimeo90k_sequence_frames(root, entry, count), span, 1, 1, entry, order=order)
        windows.extend(found[:1] if split in ("test", "val") else found)
    return windows


def gopro_frame_folder(sequence: Path) -> Path:
    """Where a GoPro sequence's sharp frames are: `<sequence>/sharp/` when present, else the sequence folder."""
    return sequence / "sharp" if (sequence / "sharp").is_dir() else sequence


def gopro_windows(root: Path, split: str, span: int, order, stride: int, step: int | None):
    """GoPro `<split>/<sequence>/<frame>.png` (or `<sequence>/sharp/`), 240 fps; `stride` frames apart."""
    split_dir = root / split
    if not split_dir.is_dir():
        raise SplitNotFoundError(f"GoPro split folder not found: {split_dir}")
    step = step or (stride if split == "train" else span * stride)
    windows = []
    for sequence in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        windows.extend(sliding_windows(list_images(gopro_frame_folder(sequence)), span, stride, step, sequence.name, order=order))
    return windows


CITYSCAPES_NAME = re.compile(r"^(?P<city>.+)_(?P<seq>\d+)_(?P<frame>\d+)_leftImg8bit\.png$")
CITYSCAPES_SNIPPET = 30  # frames per snippet (17 fps); the 20th carries the fine annotation


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
        raise SplitNotFoundError(f"Cityscapes split folder not found: {split_dir}")
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
        raise SplitNotFoundError(f"KITTI splits are 'train' and 'test', got {split!r}")
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
        error = SplitNotFoundError if len(missing) == len(folders) else DataError  # none of the split's drives: no such split here
        raise error(f"KITTI {split} drive folder(s) not found: {', '.join(str(m) for m in missing[:4])}"
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
    return [(video, root / "JPEGImages" / "480p" / video) for video in read_split_list(root / "ImageSets" / "2017" / f"{split}.txt")]


def davis17_windows(root: Path, split: str, span: int, order, context_frames: int, step: int | None):
    """DAVIS 2017 `JPEGImages/480p/<video>/00000.jpg` with `ImageSets/2017/<split>.txt`.

    val (the protocol): the 30 videos of `val.txt`, their first 9 frames, frames 2, 3 -> 4..8.
    train: `train.txt`, every `span`-frame window.
    """
    if split not in ("train", "val"):
        raise SplitNotFoundError(f"DAVIS 2017 splits are 'train' and 'val' (the protocol), got {split!r}")
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


def ucf101_videos(root: Path, split: str) -> list[Path]:
    """The videos listed for `split` in `ucfTrainTestlist/` (first column), whether present or not."""
    video_root = ucf101_video_root(root)
    return [video_root / line.split()[0] for line in read_split_list(root / "ucfTrainTestlist" / UCF101_LISTS[split])]


def ucf101_windows(root: Path, split: str, span: int, order):
    """UCF101 `<Class>/v_<Class>_gXX_cYY.avi` with `ucfTrainTestlist/trainlist01.txt` / `testlist01.txt`.

    Train: per video, `UCF101_CLIP - span + 1` samples (every `span`-frame position inside a
    10-frame clip, as DMVFN trains on every triplet of it); the clip's stride (1..5) and start are
    drawn per sample in `WindowDataset.draw_frames`. Test: the first `span` frames of each video.
    """
    if split not in UCF101_LISTS:
        raise SplitNotFoundError(f"UCF101 splits are 'train' and 'test', got {split!r}")
    if span > UCF101_CLIP:
        raise ValueError(f"UCF101 training clips hold {UCF101_CLIP} frames; a window of {span} does not fit")
    if split == "train" and order is not None:
        raise ValueError("UCF101 training (random-stride clips) is for prediction: use task='extrapolate'")
    videos = ucf101_videos(root, split)
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


def clip_sources(root: Path) -> list:
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


def frames_windows(root: Path, split: str, span: int, order, stride: int, step: int | None, test_fraction: float,
                   motion_strides: int = 1):
    """Sliding windows; the last `test_fraction` of every clip is the test part (never trained on).

    A clip folder with a `scene.json` (a synthetic clip, `data_prep make_synthetic`) gives its
    windows a `clip_dir`, so that readers can use its exact flow as their teacher.

    `motion_strides` N > 1 (training split only) adds the windows at frame strides 2..N times
    `stride`: the same footage with N times its motion, so that a clip that barely moves still
    teaches the larger motions of other footage (names `<clip>/s<k>/<start>`).
    """
    windows = []
    for multiple in range(1, (motion_strides if split == "train" else 1) + 1):
        suffix = "" if multiple == 1 else f"/s{multiple}"
        windows.extend(_frames_windows_at(root, split, span, order, stride * multiple, step, test_fraction, suffix))
    return windows


def _frames_windows_at(root: Path, split: str, span: int, order, stride: int, step: int | None, test_fraction: float,
                       suffix: str) -> list:
    windows = []
    for source in clip_sources(root):
        if source.is_file():
            frames = [(source, i) for i in range(VideoReader(source).num_frames)]
        else:
            frames = list_images(source)
        boundary = int(math.floor(len(frames) * (1.0 - test_fraction)))
        part = frames[:boundary] if split == "train" else frames[boundary:]
        name = (source.stem if source.is_file() else source.name) + suffix
        offset = 0 if split == "train" else boundary
        # a synthetic clip folder among the clips (its scene.json) keeps its exact flow: the teacher of its windows
        scene_clip = source if source.is_dir() and (source / SCENE_FILE).is_file() else None
        found = sliding_windows(part, span, stride, step or (1 if split == "train" else span), name, clip_dir=scene_clip,
                                order=order)
        for window in found:
            window.frame_indices = [i + offset for i in window.frame_indices]
        windows.extend(found)
    return windows


def synthetic_windows(root: Path, split: str, span: int, order, step: int | None):
    split_dir = root / split
    if not split_dir.is_dir():
        raise SplitNotFoundError(f"synthetic split folder not found: {split_dir} (run data_prep make_synthetic)")
    windows = []
    for clip in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        frames = list_images(clip)
        windows.extend(sliding_windows(frames, span, 1, step or (1 if split == "train" else span), clip.name, clip_dir=clip, order=order))
    return windows


__all__ = [
    "CITYSCAPES_NAME", "CITYSCAPES_SNIPPET", "KITTI_CAMERAS", "KITTI_TEST_DRIVES", "KITTI_TRAIN_DRIVES", "UCF101_CLIP", "UCF101_LISTS",
    "UCF101_MAX_STRIDE", "cityscapes_snippets", "cityscapes_windows", "clip_sources", "davis17_video_folders", "davis17_windows",
    "frames_windows", "gopro_frame_folder", "gopro_windows", "kitti_clips", "kitti_drive_dir", "kitti_frame_folders", "kitti_windows",
    "synthetic_windows", "ucf101_video_root", "ucf101_videos", "ucf101_windows", "vimeo90k_sequence_frames", "vimeo90k_windows",
]
