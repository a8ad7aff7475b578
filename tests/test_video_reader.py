"""VideoReader: frame counts and random access are those of sequential decoding, not of the container's header."""
import pickle
import random

import cv2
import imageio.v2 as imageio
import numpy as np
import pytest

from ifrvp_core.data import io
from ifrvp_core.data.io import DataError, VideoReader


def _moving_frames(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Frames that all differ: a bright bar moving right over a background that brightens."""
    frames = []
    for i in range(count):
        frame = np.full((height, width, 3), 20 + 3 * i, np.uint8)
        frame[8:40, (2 * i) % (width - 8) : (2 * i) % (width - 8) + 8] = (240, 200, 60)
        frames.append(frame)
    return frames


def _header_count(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return count


def _sequential(path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


@pytest.fixture(scope="module")
def cut_mp4(tmp_path_factory):
    """An H.264 MP4 (index at the front) of 60 frames with its last third cut off: the header still says 60."""
    path = tmp_path_factory.mktemp("mp4") / "cut.mp4"
    with imageio.get_writer(path, fps=10, codec="libx264", macro_block_size=1, ffmpeg_log_level="error",
                            output_params=["-movflags", "+faststart", "-g", "12"]) as writer:
        for frame in _moving_frames(60):
            writer.append_data(frame)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


@pytest.fixture(scope="module")
def cut_avi(tmp_path_factory):
    """An MJPEG AVI of 30 frames cut to 60 % of its bytes: the header still says 30."""
    path = tmp_path_factory.mktemp("avi") / "cut.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for frame in _moving_frames(30):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


@pytest.mark.parametrize("name", ["cut_mp4", "cut_avi"])
def test_num_frames_is_what_decodes_and_random_reads_equal_sequential_decoding(name, request):
    path = request.getfixturevalue(name)
    truth = _sequential(path)
    assert 5 < len(truth) < _header_count(path)  # the header is wrong: the test means something
    reader = VideoReader(path)
    assert reader.num_frames == len(truth) and reader.header_frames == _header_count(path)
    order = list(range(len(truth))) * 2
    random.Random(0).shuffle(order)
    for index in order:
        assert np.array_equal(reader.read(index), truth[index]), index
    assert [np.array_equal(a, b) for a, b in zip(reader.iter_frames(3), truth[3:])] == [True] * (len(truth) - 3)
    with pytest.raises(DataError, match=f"frame {len(truth)} out of range 0..{len(truth) - 1} in .*cut"):
        reader.read(len(truth))


def test_a_seek_that_lands_elsewhere_is_caught_and_decoded_sequentially(cut_mp4, monkeypatch):
    """OpenCV's frame seeking is not exact for every codec: a seek to the wrong frame must not be returned."""
    truth = _sequential(cut_mp4)
    reader = VideoReader(cut_mp4)
    original = cv2.VideoCapture

    seeks = []

    class OffByThree:  # seeks land three frames early, as inexact seeking does
        def __init__(self, *args):
            self.capture = original(*args)

        def set(self, prop, value):
            seeks.append(value)
            return self.capture.set(prop, value - 3 if prop == cv2.CAP_PROP_POS_FRAMES else value)

        def __getattr__(self, name):
            return getattr(self.capture, name)

    monkeypatch.setattr(cv2, "VideoCapture", OffByThree)
    monkeypatch.setattr(io, "FORWARD_DECODE_LIMIT", 2)  # seek for any jump of more than 2 frames
    n = len(truth)
    for index in (n - 1, n // 2, n - 2, n // 2 - 1, 8):
        assert np.array_equal(reader.read(index), truth[index]), index
    assert seeks == [n - 1, n // 2, n - 2, n // 2 - 1, 8]  # every jump seeked (and was caught)


def test_reader_pickles_for_dataloader_workers(cut_avi):
    reader = VideoReader(cut_avi)
    first = reader.read(4)
    clone = pickle.loads(pickle.dumps(reader))
    assert clone.num_frames == reader.num_frames and clone._capture is None
    assert np.array_equal(clone.read(4), first) and np.array_equal(clone.read(5), reader.read(5))


def test_broken_video_is_one_error_naming_the_file_without_decoder_noise(tmp_path, capfd):
    good = tmp_path / "good.mp4"
    with imageio.get_writer(good, fps=10, codec="libx264", macro_block_size=1, ffmpeg_log_level="error") as writer:
        for frame in _moving_frames(8):
            writer.append_data(frame)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(good.read_bytes()[:-300])  # the index (moov atom) is at the end: gone
    capfd.readouterr()
    with pytest.raises(DataError, match="cannot open video .*broken.mp4"):
        VideoReader(broken)
    assert capfd.readouterr().err == ""  # no "moov atom not found" from FFmpeg
