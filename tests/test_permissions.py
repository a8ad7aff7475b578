"""Files the project writes atomically get an ordinary file's mode (umask-respecting), not mkstemp's 0600."""
import json
import os
import stat

import numpy as np
import pytest
import torch

from ifrvp_core.checkpoint import current_umask, ordinary_file_mode, save_atomic, write_text_atomic


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=lambda m: f"umask{m:03o}")
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_umask_is_read_without_changing_it(umask):
    assert current_umask() == umask
    assert current_umask() == umask  # reading it twice leaves it as it was
    assert ordinary_file_mode() == 0o666 & ~umask


def test_atomic_writes_get_the_mode_of_an_ordinary_file(tmp_path, umask):
    expected = {0o022: 0o644, 0o077: 0o600, 0o002: 0o664}[umask]
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert mode(plain) == expected  # what open() gives: the reference
    checkpoint = save_atomic({"weights": torch.zeros(3)}, tmp_path / "run" / "best.pt")
    text = write_text_atomic(tmp_path / "summary.json", json.dumps({"a": 1}))
    assert mode(checkpoint) == expected and mode(text) == expected
    assert torch.equal(torch.load(checkpoint, weights_only=True)["weights"], torch.zeros(3))
    # overwriting keeps the ordinary mode too (the rename brings the new file's mode)
    os.chmod(text, 0o600)
    write_text_atomic(text, "{}")
    assert mode(text) == expected and text.read_text() == "{}"
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []  # no temporary files left behind


def test_data_files_are_written_by_the_one_atomic_writer(tmp_path, umask, monkeypatch):
    """Images, flows and synthetic clips: ordinary mode, no temporary left behind, the bytes OpenCV writes."""
    import cv2

    from ifrvp_core.data.io import write_flow, write_image_atomic
    from ifrvp_core.data.synthetic import generate_scene, write_clip

    expected = 0o666 & ~umask
    rgb = (np.random.default_rng(0).random((9, 11, 3)) * 255).astype(np.uint8)
    flow = np.random.default_rng(1).normal(size=(9, 11, 2)).astype(np.float32)
    written = [write_image_atomic(tmp_path / "data" / "frame.png", rgb), write_flow(tmp_path / "data" / "a.flo", flow),
               write_flow(tmp_path / "data" / "a.npy", flow)]
    clip = write_clip(tmp_path / "clip", generate_scene(0, 2, 16, 24))
    written += sorted(clip.iterdir())
    assert {path.name: mode(path) for path in written} == {path.name: expected for path in written}
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []
    cv2.imwrite(str(tmp_path / "reference.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.writeOpticalFlow(str(tmp_path / "reference.flo"), flow)
    assert (tmp_path / "data" / "frame.png").read_bytes() == (tmp_path / "reference.png").read_bytes()
    assert (tmp_path / "data" / "a.flo").read_bytes() == (tmp_path / "reference.flo").read_bytes()
    # a write that fails half way keeps the previous file and leaves no temporary behind
    monkeypatch.setattr(np, "save", lambda handle, array: handle.write(b"partial") and 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_flow(tmp_path / "data" / "a.npy", flow)
    monkeypatch.undo()
    assert np.array_equal(np.load(tmp_path / "data" / "a.npy"), flow.astype(np.float16))
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []


def test_atomic_temporary_names_are_unique(tmp_path):
    """Two writers of one file never share a temporary file (the name is drawn per write)."""
    from ifrvp_core.atomic import write_atomic, write_bytes_atomic

    target = tmp_path / "shared.bin"
    seen = []

    def outer(handle):
        write_atomic(target, lambda inner: seen.extend(p.name for p in tmp_path.glob(".shared.bin.*")) or inner.write(b"inner"))
        handle.write(b"outer")

    write_atomic(target, outer)
    assert len(set(seen)) == 2 and target.read_bytes() == b"outer"  # both temporaries existed at once
    assert write_bytes_atomic(target, b"x").read_bytes() == b"x"
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]


def test_videos_and_animations_are_written_by_the_one_atomic_writer(tmp_path, umask):
    """Writers that need a file name (ffmpeg, imageio): ordinary mode, the suffix kept, nothing left on failure."""
    from ifrvp_core.atomic import write_file_atomic
    from ifrvp_core.predict import write_video
    from ifrvp_core.visualisation import write_animation

    expected = 0o666 & ~umask
    frames = [np.full((10, 14, 3), 40 * k, np.uint8) for k in range(3)]
    video, count = write_video(frames, tmp_path / "out" / "clip.mp4")
    gif = write_animation(frames, tmp_path / "out" / "clip.gif")
    assert count == 3 and mode(video) == expected and mode(gif) == expected
    assert gif.read_bytes()[:6] == b"GIF89a" and video.stat().st_size > 0
    suffixes = []
    write_file_atomic(tmp_path / "out" / "a.gif", lambda tmp: suffixes.append(tmp.suffix) or tmp.write_bytes(b"x"))
    assert suffixes == [".gif"]  # encoders that pick the format by suffix still see it
    with pytest.raises(ValueError, match="no frames"):
        write_video([], tmp_path / "out" / "clip.mp4")
    assert video.stat().st_size > 0  # the previous video is kept
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []


def test_results_reports_and_index_are_readable_by_others(tmp_path, umask):
    from ifrvp_core.evaluate import save_results
    from ifrvp_core.workbook.runner import WorkbookResult, write_index

    expected = 0o666 & ~umask
    written = save_results({"model": {"t+1": {"psnr": 30.0, "ssim": 0.9}}}, tmp_path / "evaluation" / "results.json")
    result = WorkbookResult("tiny", tmp_path, tmp_path / "work")
    index = write_index(result)
    files = [*written.values(), index, tmp_path / "workbook_summary.json"]
    assert {path.name: mode(path) for path in files} == {path.name: expected for path in files}


def test_predicted_video_and_frames_folder_are_readable_by_others(tmp_path, umask):
    from ifrvp_core.predict import write_frames, write_video

    frames = [np.full((16, 16, 3), value, np.uint8) for value in (0, 128, 255)]
    video, count = write_video(frames, tmp_path / "out.mp4", fps=5)
    assert count == 3 and mode(video) == 0o666 & ~umask
    folder, count = write_frames(frames, tmp_path / "frames")
    assert count == 3 and mode(folder) == 0o777 & ~umask  # mkdtemp's 0700 would hide the frames
    assert {mode(p) for p in folder.iterdir()} == {0o666 & ~umask}
