"""Image, video and flow file IO with errors that name the file; atomic writes (`ifrvp_core.atomic`)."""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from ifrvp_core.atomic import write_atomic, write_bytes_atomic

# FFmpeg inside OpenCV prints demuxer and decoder complaints ("moov atom not found") straight to
# stderr; a broken video is reported here as one DataError naming the file instead. OpenCV reads
# this once, when it first opens a video, hence at import; a level the user set wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

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


# How far the open decoder decodes forward to reach a later frame before `VideoReader.read` seeks instead.
FORWARD_DECODE_LIMIT = 32


class VideoReader:
    """Frame-exact random access to a video's frames without loading the whole file (OpenCV).

    Frame `i` is the i-th frame that sequential decoding gives, and `num_frames` counts the frames
    that decode: container headers are not trusted (an MP4 said 456 frames and decoded 455, an AVI
    said 444 and decoded 68). The first use of `num_frames` or `read` decodes the file once and
    keeps a digest of every frame (16 bytes a frame, cached per file in the process). `read` then
    decodes forward from where the open decoder is, or seeks with OpenCV (not frame-exact for every
    codec) and keeps the frame only if its digest is the one sequential decoding gave at that index;
    otherwise it decodes sequentially from the start. `iter_frames` streams without that pass.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"video not found: {self.path}", self.path)
        capture = self._open()
        self.fps = float(capture.get(cv2.CAP_PROP_FPS)) or 25.0
        self.height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.header_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))  # what the container says; may be wrong
        capture.release()
        self._digests: tuple[bytes, ...] | None = None
        self._capture = None
        self._position = None  # index of the frame the open decoder gives next (believed; every frame read is checked)

    def _open(self):
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise DataError(f"cannot open video (unsupported or corrupt): {self.path}", self.path)
        return capture

    @property
    def frame_digests(self) -> tuple[bytes, ...]:
        """A digest of every frame that decodes, in order (one decode pass on first use)."""
        if self._digests is None:
            stat = self.path.stat()
            self._digests = _decoded_digests(str(self.path.resolve()), stat.st_size, stat.st_mtime_ns)
        return self._digests

    @property
    def num_frames(self) -> int:
        """The number of frames that actually decode (not the container's `header_frames`)."""
        return len(self.frame_digests)

    def _decode(self, start: int = 0):
        """BGR frames of sequential decoding from `start` on (frames before it decoded, not converted)."""
        capture = self._open()
        try:
            for _ in range(start):
                if not capture.grab():
                    return
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield frame
        finally:
            capture.release()

    def iter_frames(self, start: int = 0):
        """Yield uint8 RGB frames from `start` on (those sequential decoding gives), streaming."""
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        for frame in self._decode(start):
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def read(self, index: int) -> np.ndarray:
        """Frame `index` as uint8 RGB, the frame sequential decoding gives; sequential reads reuse the open decoder."""
        digests = self.frame_digests
        if not 0 <= index < len(digests):
            raise DataError(f"frame {index} out of range 0..{len(digests) - 1} in {self.path}", f"{self.path}#{index}")
        ahead = None if self._capture is None else index - self._position
        frame = None
        if ahead is not None and 0 <= ahead <= FORWARD_DECODE_LIMIT:
            frame = self._forward_to(index, digests)
        elif index > FORWARD_DECODE_LIMIT:
            frame = self._seek_to(index, digests)
        if frame is None:  # no open decoder near, or the seek or a seeked decoder gave another frame
            self._restart()
            frame = self._forward_to(index, digests)
        if frame is None:
            raise DataError(f"cannot decode frame {index} of {self.path} as the first decode did (has the file changed?)",
                            f"{self.path}#{index}")
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def _restart(self) -> None:
        if self._capture is not None:
            self._capture.release()
        self._capture, self._position = self._open(), 0

    def _seek_to(self, index: int, digests) -> np.ndarray | None:
        if self._capture is None:
            self._capture = self._open()
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        self._position = index
        return self._forward_to(index, digests)

    def _forward_to(self, index: int, digests) -> np.ndarray | None:
        """Decode from the open decoder's position to `index`; the frame, or None if its digest is not frame `index`'s."""
        while self._position < index:
            if not self._capture.grab():
                return None
            self._position += 1
        ok, frame = self._capture.read()
        self._position += 1
        if not ok or _digest(frame) != digests[index]:
            self._capture.release()
            self._capture = self._position = None
            return None
        return frame

    def close(self) -> None:
        """Release the open decoder (reads reopen it)."""
        if self._capture is not None:
            self._capture.release()
        self._capture = self._position = None

    def __getstate__(self):  # DataLoader workers reopen the decoder
        state = dict(self.__dict__)
        state["_capture"], state["_position"] = None, None
        return state


def _digest(frame: np.ndarray) -> bytes:
    # A strong hash of every byte: equal digests mean equal frames, so a seek that lands on a frame
    # identical to the one asked for still returns exactly the pixels sequential decoding gives.
    return hashlib.sha256(np.ascontiguousarray(frame).data).digest()[:16]


@functools.lru_cache(maxsize=256)
def _decoded_digests(path: str, size: int, mtime_ns: int) -> tuple[bytes, ...]:
    """Digests of every frame of sequential decoding; cached per (file, size, modification time)."""
    reader = VideoReader(path)
    return tuple(_digest(frame) for frame in reader._decode())
