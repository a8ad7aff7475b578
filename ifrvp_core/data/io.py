"""Image, video and flow file IO with errors that name the file; atomic writes (`ifrvp_core.atomic`)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ifrvp_core.atomic import write_atomic, write_bytes_atomic

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v")


class DataError(RuntimeError):
    """A dataset file or layout problem; the message names the file.

    `path` is the offending file when there is one (training's `--on_bad_sample skip` logs it).
    """

    def __init__(self, message: str, path=None):
        super().__init__(message)
        self.path = None if path is None else str(path)


class SplitNotFoundError(DataError, ValueError):
    """The dataset has no such split here: its folder or list file is missing, the layout has no
    split of that name, or the split holds no samples.

    Tools that go through several splits (`data_prep teacher_flow`) skip such a split and let
    every other error through. It is also a `ValueError`, as an unknown split name always was
    (as `io.UnsupportedOperation` is both an OSError and a ValueError).
    """


def read_image(path) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3).

    Grayscale, RGBA (alpha dropped) and 16-bit images are converted to 8-bit RGB on purpose;
    missing, truncated or corrupt files raise `DataError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}", path)
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DataError(f"cannot decode image (truncated or corrupt): {path}", path)
    if path.suffix.lower() == ".png" and not _png_complete(data):
        raise DataError(f"truncated PNG (no IEND chunk): {path}", path)
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DataError(f"unsupported image dtype {image.dtype}: {path}", path)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _png_complete(data: np.ndarray) -> bool:
    # OpenCV decodes a PNG cut inside its last IDAT chunk with garbage rows and only a warning.
    return data.size >= 12 and bytes(data[-12:-4]) == b"\x00\x00\x00\x00IEND"


def write_image_atomic(path, rgb: np.ndarray) -> Path:
    """Write uint8 RGB (H, W, 3) atomically (`ifrvp_core.atomic`), encoded by the suffix of `path`."""
    path = Path(path)
    ok, data = cv2.imencode(path.suffix, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError(f"could not write image {path}")
    write_bytes_atomic(path, data.tobytes())
    return path


def read_flow(path) -> np.ndarray:
    """Read a flow as float32 (H, W, 2): Middlebury `.flo` or float16/32 `.npy`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"flow file not found: {path}", path)
    if path.suffix == ".npy":
        try:
            flow = np.load(path).astype(np.float32)
        except Exception as error:
            raise DataError(f"cannot read flow {path}: {error}", path) from error
    else:
        flow = cv2.readOpticalFlow(str(path))
        if flow is None:
            raise DataError(f"cannot read .flo file (truncated or corrupt): {path}", path)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise DataError(f"flow {path} has shape {flow.shape}, expected (H, W, 2)", path)
    return flow


def encode_flo(flow: np.ndarray) -> bytes:
    """float (H, W, 2) flow as Middlebury `.flo` bytes: b"PIEH", width, height (int32), float32 rows.

    The bytes `cv2.writeOpticalFlow` writes, built in memory so the file can be written atomically.
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise DataError(f"a .flo flow is (H, W, 2), got shape {flow.shape}")
    height, width = flow.shape[:2]
    return b"PIEH" + np.array([width, height], "<i4").tobytes() + np.ascontiguousarray(flow, "<f4").tobytes()


def write_flow(path, flow: np.ndarray) -> Path:
    """Write float32 (H, W, 2) flow atomically (`.flo` Middlebury or `.npy` float16; `ifrvp_core.atomic`)."""
    path = Path(path)
    if path.suffix == ".npy":
        write_atomic(path, lambda handle: np.save(handle, flow.astype(np.float16)))
        return path
    write_bytes_atomic(path, encode_flo(flow))
    return path


class VideoReader:
    """Random access to a video's frames without loading the whole file (OpenCV)."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"video not found: {self.path}")
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise DataError(f"cannot open video (unsupported or corrupt): {self.path}")
        self.num_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.fps = float(capture.get(cv2.CAP_PROP_FPS)) or 25.0
        self.height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        capture.release()
        if self.num_frames <= 0:
            self.num_frames = sum(1 for _ in self.iter_frames())
        self._capture = None
        self._position = None

    def iter_frames(self, start: int = 0):
        """Yield uint8 RGB frames from `start` on, streaming."""
        capture = cv2.VideoCapture(str(self.path))
        if start:
            capture.set(cv2.CAP_PROP_POS_FRAMES, start)
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    def read(self, index: int) -> np.ndarray:
        """Frame `index` as uint8 RGB; sequential reads reuse the open decoder."""
        if not 0 <= index < self.num_frames:
            raise DataError(f"frame {index} out of range 0..{self.num_frames - 1} in {self.path}")
        if self._capture is None or self._position != index:
            if self._capture is None:
                self._capture = cv2.VideoCapture(str(self.path))
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = self._capture.read()
        if not ok:
            raise DataError(f"cannot decode frame {index} of {self.path}", f"{self.path}#{index}")
        self._position = index + 1
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def __getstate__(self):  # DataLoader workers reopen the decoder
        state = dict(self.__dict__)
        state["_capture"], state["_position"] = None, None
        return state
