"""Predict the future of a video or a frames folder, and interpolate between two images.

By default `predict_video` predicts the future: the context is the source's last K frames (K =
the model's context frames) and the output holds the `steps` frames after the source's end.
A context start counts from the first frame, or from the end when negative (Python style); from
a start inside the source, the real frames after the context (where they exist) feed the
side-by-side comparison. Frames are read *streaming*: a video is decoded frame by frame, and from
a start counted from the first frame decoding stops after the last frame needed; from the end,
only the frames from the start on are kept while the file is decoded once.
Predictions are made recursively (`ifrvp_core.rollout.iter_rollout`: each prediction becomes the
newest context frame) and written one by one as an MP4 (H.264, yuv420p, even sides), an AVI
(MJPEG), a GIF (one palette for the whole animation, looping), all via imageio-ffmpeg, or a
folder of PNGs, through a temporary file/folder renamed into place at the end.

    >>> model = load_model("runs/x/best.pt")
    >>> predict_video(model, "clip.mp4", steps=10, out="future.gif")  # the 10 frames after the clip
    >>> predict_video(model, "clip.mp4", steps=10, out="check.mp4", context_start=20, side_by_side=True)
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections import deque
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import imageio_ffmpeg
import numpy as np
import torch
from tqdm.auto import tqdm

from ifrvp_core.atomic import ordinary_dir_mode, write_file_atomic
from ifrvp_core.data import list_images
from ifrvp_core.data.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, DataError, VideoReader, read_image, write_image_atomic
from ifrvp_core.quantise import to_uint8
from ifrvp_core.precision import check_precision
from ifrvp_core.rollout import ModelStep, iter_rollout, resolve_device

__all__ = [
    "VIDEO_OUTPUTS",
    "compose_context_panels",
    "compose_side_by_side",
    "interpolate_files",
    "interpolate_pair",
    "iter_rollout",
    "iter_source_frames",
    "predict_video",
    "to_tensor",
    "to_uint8",  # from ifrvp_core.quantise, importable here as before
    "write_frames",
    "write_video",
]

DEFAULT_FPS = 25.0

# Encoders by output suffix (imageio_ffmpeg.write_frames arguments). MP4 and AVI take even sides
# (yuv420p / yuvj420p). The GIF gets one palette made from all its frames (no flicker between
# frames; ffmpeg holds the frames until the end, as any GIF writer does) and keeps every frame:
# Pillow's GIF writer merges identical consecutive frames, which a still scene predicts.
# GIF delays are in 1/100 s, so a GIF plays 12 fps as 12.5.
VIDEO_OUTPUTS = {
    ".mp4": dict(codec="libx264", pix_fmt_out="yuv420p", quality=8),
    ".avi": dict(codec="mjpeg", pix_fmt_out="yuvj420p", quality=10),
    ".gif": dict(codec="gif", pix_fmt_out="pal8", quality=None, output_params=[
        "-filter_complex", "split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse=dither=sierra2_4a"]),
}


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


# --------------------------------------------------------------------------------------------
# reading


def iter_source_frames(source, start: int = 0) -> tuple[Iterator[np.ndarray], float | None]:
    """Frames of a video file or an image folder from index `start` on, one at a time.

    Returns:
        (iterator of uint8 RGB (H, W, 3), frames per second of a video or None for folders).
        Raises DataError naming the path when it is missing, unreadable or not a video/folder.
        `predict_video` handles starts counted from the end.
    """
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    source = Path(source)
    if source.is_dir():
        images = list_images(source)
        if not images:
            raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in frames folder {source}")
        return (read_image(path) for path in images[start:]), None
    if not source.exists():
        raise DataError(f"video or frames folder not found: {source}")
    if source.suffix.lower() not in VIDEO_SUFFIXES:
        raise DataError(f"not a video ({', '.join(VIDEO_SUFFIXES)}) or a frames folder: {source}")
    reader = VideoReader(source)  # DataError naming the file if OpenCV cannot open it
    return reader.iter_frames(start), reader.fps


# --------------------------------------------------------------------------------------------
# writing


def _even(image: np.ndarray) -> np.ndarray:
    """Replicate-pad the last row/column so both sides are even (yuv420p needs it)."""
    pad_h, pad_w = image.shape[0] % 2, image.shape[1] % 2
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return image


def write_video(frames: Iterable[np.ndarray], path, fps: float = DEFAULT_FPS) -> tuple[Path, int]:
    """Write uint8 RGB frames as a playable `.mp4` (H.264), `.avi` (MJPEG) or `.gif`, atomically.

    For MP4 and AVI odd sides are made even by repeating the last row/column (never resized).
    Frames must all have the size of the first. Returns (path, number of frames written).
    """
    path = Path(path)
    options = VIDEO_OUTPUTS.get(path.suffix.lower())
    if options is None:
        raise ValueError(f"cannot write {path}: a video output ends in {', '.join(VIDEO_OUTPUTS)}")
    even = path.suffix.lower() != ".gif"
    count = 0

    def encode(tmp_path: Path) -> None:
        nonlocal count
        writer = size = None
        try:
            for frame in frames:
                frame = np.ascontiguousarray(frame, dtype=np.uint8)
                frame = _even(frame) if even else frame
                if size is None:
                    size = frame.shape
                    writer = imageio_ffmpeg.write_frames(
                        str(tmp_path), (size[1], size[0]), fps=float(fps), macro_block_size=1, ffmpeg_log_level="error", **options
                    )
                    writer.send(None)  # start ffmpeg
                elif frame.shape != size:
                    raise ValueError(f"frame {count} is {frame.shape[1]}x{frame.shape[0]}, the video is {size[1]}x{size[0]}")
                writer.send(frame)
                count += 1
        finally:
            if writer is not None:
                writer.close()
        if count == 0:
            raise ValueError(f"no frames to write to {path}")

    path = write_file_atomic(path, encode)
    return path, count


def write_frames(frames: Iterable[np.ndarray], folder, prefix: str = "frame") -> tuple[Path, int]:
    """Write uint8 RGB frames as `<folder>/<prefix>_00000.png ...`.

    The PNGs go to a temporary sibling folder that replaces `folder` at the end, so a crash
    never leaves a half-filled output folder. Returns (folder, number of frames).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output {folder} exists and is not a folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    count = 0
    try:
        for count, frame in enumerate(frames, start=1):
            write_image_atomic(tmp / f"{prefix}_{count - 1:05d}.png", frame)
        os.chmod(tmp, ordinary_dir_mode())  # mkdtemp made it 0700
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder, count


# --------------------------------------------------------------------------------------------
# pictures


def _label(image: np.ndarray, text: str) -> np.ndarray:
    image = image.copy()
    scale = max(0.3, min(image.shape[1], image.shape[0]) / 400.0)
    thickness = max(1, int(round(scale * 2)))
    origin = (4, int(14 * scale) + 4)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return image


def error_image(prediction: np.ndarray, truth: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """|prediction - truth| averaged over RGB, times `gain`, as an inferno heat map (uint8 RGB)."""
    difference = np.abs(prediction.astype(np.float32) - truth.astype(np.float32)).mean(axis=2)
    scaled = np.clip(difference * gain, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def compose_side_by_side(context: np.ndarray, prediction: np.ndarray, truth: np.ndarray | None, step: int) -> np.ndarray:
    """context | prediction | truth | error, each (H, W, 3) uint8 -> (H, 4W, 3) uint8.

    Without a true frame (past the end of the source) the truth and error panels are gray.
    """
    blank = np.full_like(prediction, 96)
    panels = [
        _label(context, "context (newest)"),
        _label(prediction, f"prediction t+{step}"),
        _label(truth, f"truth t+{step}") if truth is not None else _label(blank, "no truth"),
        _label(error_image(prediction, truth), "|error| x4") if truth is not None else _label(blank, "no truth"),
    ]
    return np.concatenate(panels, axis=1)


def compose_context_panels(newest: np.ndarray, frame: np.ndarray, age: int) -> np.ndarray:
    """The side-by-side row of a context frame `age` frames before the newest: newest | frame | frame | gray.

    The second and third columns then run on into the predictions and the truths.
    """
    label = "t" if age == 0 else f"t-{age}"
    panels = [_label(newest, "context (newest)"), _label(frame, f"context {label}"), _label(frame, f"truth {label}"),
              _label(np.full_like(frame, 96), "context")]
    return np.concatenate(panels, axis=1)


# --------------------------------------------------------------------------------------------
# prediction


def predict_video(
    model,
    source,
    steps: int,
    out,
    context_start: int | None = None,
    fps: float | None = None,
    side_by_side: bool = False,
    with_context: bool = False,
    scale_factor: float = 1.0,
    device=None,
    progress: bool = True,
    precision: str = "fp32",
) -> dict:
    """Predict `steps` frames after a context window of a video or frames folder and write them.

    Args:
        model: IFRNet-family model (`predict(frames, t, scale_factor)`, `context_frames`).
        source: video file or folder of frames (sorted by name).
        steps: number of frames to predict (recursively).
        out: `.mp4`, `.avi` or `.gif` file, or a folder for PNGs (a path without a suffix).
        context_start: index of the first context frame in the source; negative counts from
            the end (-3: the third-last frame). None (default): the last K frames, so the
            predictions are the `steps` frames after the source's end.
        fps: output frame rate (default: the video's, 25 for folders).
        side_by_side: write context | prediction | truth | error panels; the truth is the real
            frame at that time when the source has it.
        with_context: write the K context frames before the predictions.
        scale_factor: run the model on frames resized by this factor (large inputs).
        device: where the model runs (None: CUDA when available).
        progress: tqdm bar over the predicted frames.
        precision: "fp32", "bf16" or "fp16": the model runs under autocast (`ifrvp_core.precision`;
            the DIS prior and the written frames are unaffected by it, bar rounding).

    Returns:
        {"out": Path, "frames": int (written), "width": int, "height": int, "truth_frames": int,
        "context_frames": int (written), "first_predicted": int (source index of the first prediction)}
    """
    out = _checked_output(out, steps)
    device = resolve_device(device)
    step_fn = ModelStep(model.to(device).eval(), scale_factor, precision=precision)
    check_precision(precision, device)  # before reading the source
    k = step_fn.context_frames
    start = -k if context_start is None else int(context_start)
    if -k < start < 0:
        raise ValueError(f"context start {start} leaves {-start} frame(s) before the end; the model needs {k} context frames")
    frames, source_fps = iter_source_frames(source, max(start, 0))
    if start < 0:
        frames, first = _from_end(frames, -start, source, k if context_start is None else None)
    else:
        first = start
    context_images = _read_context(frames, k, source, start)
    height, width = context_images[0].shape[:2]
    context = torch.stack([to_tensor(image) for image in context_images]).unsqueeze(0).to(device)
    output = _OutputFrames(step_fn, context, steps, context_images, frames if side_by_side else None, with_context, progress)
    if out.suffix.lower() in VIDEO_OUTPUTS:
        path, count = write_video(output, out, fps or source_fps or DEFAULT_FPS)
    else:
        path, count = write_frames(output, out, prefix="pred")
    panel_width = width * (4 if side_by_side else 1)
    return {"out": path, "frames": count, "width": panel_width, "height": height, "truth_frames": output.truth_frames,
            "context_frames": k if with_context else 0, "first_predicted": first + k}


def _checked_output(out, steps: int) -> Path:
    """`out` as a Path, after refusing bad steps or output kinds (ValueError)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in VIDEO_OUTPUTS and suffix in (*VIDEO_SUFFIXES, *IMAGE_SUFFIXES):
        raise ValueError(f"output {out} must be an .mp4, .avi or .gif file, or a folder for PNG frames")
    return out


def _from_end(frames: Iterator[np.ndarray], count: int, source, context_frames: int | None) -> tuple[Iterator[np.ndarray], int]:
    """The last `count` frames (decoding all, keeping only those) and the source index of the first.

    DataError naming the source when it has fewer; `context_frames` phrases it for the default context.
    """
    tail: deque = deque(maxlen=count)
    total = 0
    for total, frame in enumerate(frames, start=1):
        tail.append(frame)
    if total == 0:
        raise DataError(f"no frame of {source} decodes (truncated or corrupt)")
    if total < count:
        need = f"the model needs {context_frames} context frames" if context_frames else f"context start {-count} needs at least {count}"
        raise DataError(f"{source} has {total} frame(s); {need}")
    return iter(tail), total - count


def _read_context(frames: Iterator[np.ndarray], count: int, source, context_start: int) -> list[np.ndarray]:
    """The next `count` frames of the source, all of one size; DataError naming the source otherwise."""
    context_images = list(islice(frames, count))
    if not context_images and context_start == 0:
        raise DataError(f"no frame of {source} decodes (truncated or corrupt)")
    if len(context_images) < count:
        raise DataError(
            f"{source} has {len(context_images)} frame(s) from index {context_start}; the model needs {count} context frames"
        )
    shapes = {image.shape for image in context_images}
    if len(shapes) > 1:
        raise DataError(f"context frames of {source} differ in size: {sorted(shapes)}")
    return context_images


class _OutputFrames:
    """The frames `predict_video` writes, made one at a time while they are written.

    Without `truths`, the predictions (uint8 RGB), after the context frames with `with_context`;
    with the source's frames after the context as `truths`, context | prediction | truth | error
    panels, each true frame read only when its prediction is made (streaming). `truth_frames`
    counts the prediction panels that had a truth.
    """

    def __init__(self, step_fn, context: torch.Tensor, steps: int, context_images: list[np.ndarray],
                 truths: Iterator[np.ndarray] | None, with_context: bool, progress: bool):
        self.step_fn, self.context, self.steps, self.truths = step_fn, context, steps, truths
        self.context_images, self.newest = context_images, context_images[-1]
        self.with_context, self.progress = with_context, progress
        self.truth_frames = 0

    def _context_frames(self) -> Iterator[np.ndarray]:
        if not self.with_context:
            return
        for age, image in zip(range(len(self.context_images) - 1, -1, -1), self.context_images):
            yield compose_context_panels(self.newest, image, age) if self.truths is not None else image

    def __iter__(self) -> Iterator[np.ndarray]:
        yield from self._context_frames()
        bar = tqdm(total=self.steps, desc="predict", unit="frame", disable=not self.progress, leave=False)
        for step, prediction in enumerate(iter_rollout(self.step_fn, self.context, self.steps), start=1):
            predicted = to_uint8(prediction[0])
            if self.truths is not None:
                truth = next(self.truths, None)  # the real frame at t+step, read only now (streaming)
                if truth is not None and truth.shape != predicted.shape:
                    truth = None
                self.truth_frames += truth is not None
                yield compose_side_by_side(self.newest, predicted, truth, step)
            else:
                yield predicted
            bar.update(1)
        bar.close()


def interpolate_pair(model, frame_a: torch.Tensor, frame_b: torch.Tensor, times, scale_factor: float = 1.0) -> torch.Tensor:
    """Frames between two images with a two-context-frame model.

    Args:
        model: IFRNet-family model with `context_frames == 2` (official IFRNet weights work).
        frame_a: (3, H, W) in [0, 1], at t = 0.
        frame_b: (3, H, W) in [0, 1], at t = 1.
        times: target times (0 < t < 1 interpolates; t > 1 extrapolates).

    Returns:
        (len(times), 3, H, W) in [0, 1].
    """
    if getattr(model, "context_frames", 2) != 2:
        raise ValueError(f"interpolation needs a model with 2 context frames, this one has {model.context_frames}")
    if frame_a.shape != frame_b.shape:
        raise ValueError(f"the two frames differ in size: {tuple(frame_a.shape)} vs {tuple(frame_b.shape)}")
    device = next(model.parameters()).device
    pair = torch.stack([frame_a, frame_b]).unsqueeze(0).to(device)
    times = [float(t) for t in times]
    if not times:
        raise ValueError("times is empty")
    batch = pair.expand(len(times), -1, -1, -1, -1)
    with torch.inference_mode():
        return model.predict(batch, torch.tensor(times, device=device), scale_factor=scale_factor)


def interpolate_files(model, path_a, path_b, times, out_dir, scale_factor: float = 1.0) -> list[Path]:
    """Read two images, interpolate at `times`, write `<out_dir>/interp_t0.500.png ...`."""
    image_a, image_b = read_image(path_a), read_image(path_b)
    if image_a.shape != image_b.shape:
        raise DataError(
            f"{path_a} is {image_a.shape[1]}x{image_a.shape[0]} but {path_b} is {image_b.shape[1]}x{image_b.shape[0]}"
        )
    frames = interpolate_pair(model, to_tensor(image_a), to_tensor(image_b), times, scale_factor)
    out_dir = Path(out_dir)
    return [write_image_atomic(out_dir / f"interp_t{float(t):.3f}.png", to_uint8(frame)) for t, frame in zip(times, frames)]
