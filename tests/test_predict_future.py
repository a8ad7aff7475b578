"""`ifrvp predict` predicts past the clip's end by default; negative context starts; GIF/AVI/PNG outputs; packaged model."""
import cv2
import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from ifrvp_core import checkpoint as checkpoint_module
from ifrvp_core.checkpoint import CheckpointError, load_packaged_model, model_checkpoint, packaged_checkpoint_path, save_atomic
from ifrvp_core.cli import main
from ifrvp_core.data.io import VideoReader
from ifrvp_core.models import build_model
from ifrvp_core.predict import to_tensor, write_video
from ifrvp_core.quantise import to_uint8

STEPS = 5


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A tiny untrained IFRNet_T (K = 2) and its checkpoint file."""
    torch.manual_seed(0)
    model = build_model("IFRNet_T").eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_atomic(model_checkpoint(model), path)
    return model, path


@pytest.fixture
def packaged(model_file, tmp_path, monkeypatch):
    """The tiny checkpoint installed as the packaged model `ifrvp-s-real` (in a temporary weights folder)."""
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "ifrvp-s-real.pt").write_bytes(model_file[1].read_bytes())
    monkeypatch.setattr(checkpoint_module, "PACKAGED_WEIGHTS_DIR", weights)
    return weights


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 9-frame 70x90 MP4 of a bar moving right, and its frames as sequential decoding gives them."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with imageio.get_writer(path, fps=12, codec="libx264", pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="error") as writer:
        for i in range(9):
            frame = np.full((70, 90, 3), 40, np.uint8)
            frame[10:60, 5 + 6 * i : 17 + 6 * i] = (230, 180, 60)
            writer.append_data(frame)
    return path, list(VideoReader(path).iter_frames())


def _recursive(model, context_frames, steps=STEPS):
    """What model.predict gives recursively (t = 2: the frame after the newest), as uint8 frames."""
    window = torch.stack([to_tensor(f) for f in context_frames]).unsqueeze(0)
    out = []
    with torch.inference_mode():
        for _ in range(steps):
            frame = model.predict(window, t=2.0)
            out.append(to_uint8(frame[0]))
            window = torch.cat([window[:, 1:], frame.unsqueeze(1)], dim=1)
    return out


def _pngs(folder):
    return [imageio.imread(path) for path in sorted(folder.glob("pred_*.png"))]


def test_acceptance_gif_holds_the_5_frames_after_the_clip(clip, model_file, packaged, tmp_path, capsys):
    """`ifrvp predict clip.mp4 --steps 5 --out future.gif`: no checkpoint given, the packaged model is used."""
    path, frames = clip
    model = model_file[0]
    out = tmp_path / "future.gif"
    assert main(["predict", str(path), "--steps", "5", "--out", str(out), "--no-progress"]) == 0
    assert f"wrote 5 frames (90x70) to {out}: predicted frames 9..13 of {path}" in capsys.readouterr().out
    gif = [frame[..., :3].astype(int) for frame in imageio.mimread(out)]
    expected = _recursive(model, frames[-2:])
    from_start = _recursive(model, frames[:2])  # what the old default (context at index 0) predicted
    assert len(gif) == 5 and gif[0].shape == (70, 90, 3)
    for got, want, wrong in zip(gif, expected, from_start):
        error = np.abs(got - want).mean()
        assert error < 2.5 and error < 0.2 * np.abs(got - wrong).mean()  # GIF palette error only, and the right frames
    assert sorted(p.name for p in tmp_path.iterdir()) == ["future.gif", "weights"]  # no temporary file left


def test_png_folder_is_exactly_the_recursive_predictions_with_context_before_them(clip, model_file, tmp_path, capsys):
    path, frames = clip
    model, ckpt = model_file
    folder = tmp_path / "future"
    assert main(["predict", str(path), "--checkpoint", str(ckpt), "--steps", "5", "--output", str(folder),
                 "--with-context", "--no_progress"]) == 0
    assert f"wrote 7 frames (90x70) to {folder}: 2 context + predicted frames 9..13 of {path}" in capsys.readouterr().out
    written = _pngs(folder)
    assert len(written) == 7
    assert all(np.array_equal(a, b) for a, b in zip(written[:2], frames[-2:]))  # the context: the clip's last 2 frames
    assert all(np.array_equal(a, b) for a, b in zip(written[2:], _recursive(model, frames[-2:])))


def test_negative_context_start_counts_from_the_end_with_truth_where_the_clip_has_it(clip, model_file, tmp_path, capsys):
    path, frames = clip
    model, ckpt = model_file
    folder = tmp_path / "sbs"
    # -4 of 9 frames: context frames 5, 6; the truth exists for t+1, t+2 (frames 7, 8), not after.
    assert main(["predict", str(path), "--checkpoint", str(ckpt), "--steps", "3", "--output", str(folder),
                 "--context_start", "-4", "--side_by_side", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 3 frames (360x70, 2 with truth)" in printed and "predicted frames 7..9" in printed
    panels = _pngs(folder)
    expected = _recursive(model, frames[5:7], steps=3)
    rows = slice(30, 70)  # below the labels
    for step, panel in enumerate(panels):
        assert np.array_equal(panel[rows, 90:180], expected[step][rows])
        assert np.array_equal(panel[rows, 0:90], frames[6][rows])  # newest context frame
    assert np.array_equal(panels[0][rows, 180:270], frames[7][rows]) and np.array_equal(panels[1][rows, 180:270], frames[8][rows])
    assert panels[2][rows, 180:360].std() == 0  # past the end: no truth, flat gray

    plain = tmp_path / "plain"
    assert main(["predict", str(path), "--checkpoint", str(ckpt), "--steps", "3", "--out", str(plain),
                 "--context-start", "5", "--no-progress"]) == 0  # the same window counted from the start
    assert all(np.array_equal(a, b) for a, b in zip(_pngs(plain), expected))


def test_avi_output_plays_back_with_the_predictions(clip, model_file, tmp_path):
    path, frames = clip
    model, ckpt = model_file
    out = tmp_path / "future.avi"
    assert main(["predict", str(path), "--checkpoint", str(ckpt), "--steps", "5", "--output", str(out), "--fps", "6",
                 "--no-progress"]) == 0
    reader = VideoReader(out)
    assert reader.num_frames == 5 and reader.fps == 6 and (reader.height, reader.width) == (70, 90)
    for got, want, wrong in zip(reader.iter_frames(), _recursive(model, frames[-2:]), _recursive(model, frames[:2])):
        error = np.abs(got.astype(int) - want).mean()
        assert error < 8 and error < 0.3 * np.abs(got.astype(int) - wrong).mean()  # MJPEG error only, and the right frames


def test_gif_keeps_identical_consecutive_frames(tmp_path):
    """A still scene predicts identical frames: the GIF must still hold one frame per prediction."""
    still = np.full((21, 33, 3), (200, 40, 90), np.uint8)
    path, count = write_video([still, still, still, np.roll(still, 1, axis=0) // 2], tmp_path / "still.gif", fps=10)
    frames = imageio.mimread(path)
    assert count == len(frames) == 4 and frames[0].shape[:2] == (21, 33)  # GIF sides kept odd (no padding)
    assert np.abs(frames[1][..., :3].astype(int) - still).max() <= 2


def test_bad_context_starts_and_outputs_exit_2_naming_the_value(clip, model_file, tmp_path, capsys):
    path, _ = clip
    ckpt = str(model_file[1])
    out = str(tmp_path / "o.mp4")
    assert main(["predict", str(path), "--checkpoint", ckpt, "--context-start", "-1", "--output", out]) == 2
    assert "context start -1 leaves 1 frame(s) before the end; the model needs 2 context frames" in capsys.readouterr().err
    assert main(["predict", str(path), "--checkpoint", ckpt, "--context-start", "-20", "--output", out]) == 2
    assert f"{path} has 9 frame(s); context start -20 needs at least 20" in capsys.readouterr().err
    assert main(["predict", str(path), "--checkpoint", ckpt, "--context-start", "8", "--output", out]) == 2
    assert f"{path} has 1 frame(s) from index 8; the model needs 2 context frames" in capsys.readouterr().err
    assert main(["predict", str(path), "--checkpoint", ckpt, "--output", str(tmp_path / "o.webm")]) == 2
    assert "o.webm must be an .mp4, .avi or .gif file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", str(path), "--checkpoint", ckpt, "--fps", "0", "--output", out])
    assert "expected a positive number, got '0'" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("keep, message", [(0.5, "cannot open video (unsupported or corrupt): {}"),
                                           (-200, "no frame of {} decodes (truncated or corrupt)")])
def test_broken_video_is_one_line_naming_it_and_no_decoder_noise(clip, model_file, tmp_path, capfd, keep, message):
    data = clip[0].read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[:keep])  # the MP4 index (moov atom) is at the end
    capfd.readouterr()
    assert main(["predict", str(broken), "--checkpoint", str(model_file[1]), "--output", str(tmp_path / "o.gif")]) == 2
    captured = capfd.readouterr()
    assert captured.err == "ifrvp predict: error: " + message.format(broken) + "\n"  # nothing from FFmpeg ("moov atom not found")
    assert captured.out == "" and not (tmp_path / "o.gif").exists()


def test_without_packaged_model_the_error_says_to_pass_checkpoint(clip, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(checkpoint_module, "PACKAGED_WEIGHTS_DIR", tmp_path / "no_weights")
    assert main(["predict", str(clip[0]), "--output", str(tmp_path / "o.gif")]) == 2
    err = capsys.readouterr().err
    assert "no packaged model 'ifrvp-s-real' is installed" in err and "pass a checkpoint file with --checkpoint" in err
    assert str(tmp_path / "no_weights" / "ifrvp-s-real.pt") in err and err.count("\n") == 1


def test_packaged_checkpoint_path_and_loading(model_file, packaged):
    assert packaged_checkpoint_path() == packaged / "ifrvp-s-real.pt"
    model = load_packaged_model("ifrvp-s-real")
    assert model.model_name == "IFRNet_T" and model.context_frames == 2
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model_file[0].state_dict().values()))
    with pytest.raises(CheckpointError, match="installed: ifrvp-s-real"):
        packaged_checkpoint_path("ifrvp-l")
    with pytest.raises(CheckpointError, match="plain name"):
        packaged_checkpoint_path("../tiny")
