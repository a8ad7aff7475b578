"""The `ifrvp` command: predict (MP4 / PNG, side by side), evaluate, interpolate, train, errors."""
import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from ifrvp_core.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from ifrvp_core.checkpoint import model_checkpoint, save_atomic
    from ifrvp_core.models import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_atomic(model_checkpoint(build_model("IFRNet_T")), path)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 9-frame 70x90 MP4 (sides not divisible by 16) of a bar moving right."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = imageio.get_writer(path, fps=12, codec="libx264", pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="error")
    for i in range(9):
        frame = np.full((70, 90, 3), 40, np.uint8)
        frame[10:60, 5 + 6 * i : 17 + 6 * i] = (230, 180, 60)
        writer.append_data(frame)
    writer.close()
    return path


def _read_video(path):
    reader = imageio.get_reader(path)
    frames = [frame for frame in reader]
    fps = reader.get_meta_data()["fps"]
    reader.close()
    return frames, fps


def test_predict_writes_playable_mp4_with_requested_frames(video, checkpoint, tmp_path, capsys):
    out = tmp_path / "future.mp4"
    code = main(["predict", str(video), "--checkpoint", str(checkpoint), "--steps", "5", "--out", str(out), "--no-progress"])
    assert code == 0
    frames, fps = _read_video(out)
    assert len(frames) == 5 and frames[0].shape == (70, 90, 3) and fps == 12
    assert "wrote 5 frames (90x70)" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["future.mp4"]  # no temporary file left


def test_predict_side_by_side_and_png_folder(video, checkpoint, tmp_path, capsys):
    out = tmp_path / "sbs.mp4"
    # Context frames 4, 5; truth exists for t+1..t+3 (frames 6-8), not for t+4.
    code = main(["predict", str(video), "--checkpoint", str(checkpoint), "--steps", "4", "--out", str(out),
                 "--side-by-side", "--context-start", "4", "--fps", "5", "--no-progress"])
    assert code == 0
    frames, fps = _read_video(out)
    assert len(frames) == 4 and frames[0].shape == (70, 360, 3) and fps == 5
    assert "3 with truth" in capsys.readouterr().out
    context_panel = frames[0][20:50, 20:80].astype(int)
    source, _ = _read_video(video)
    assert np.abs(context_panel - source[5][20:50, 20:80].astype(int)).mean() < 4  # newest context frame
    assert frames[3][30:60, 3 * 90 + 20 : 3 * 90 + 80].std() < 1  # no truth: flat gray error panel

    folder = tmp_path / "pngs"
    assert main(["predict", str(video), "--checkpoint", str(checkpoint), "--steps", "3", "--out", str(folder), "--no-progress"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["pred_00000.png", "pred_00001.png", "pred_00002.png"]
    assert imageio.imread(folder / "pred_00002.png").shape == (70, 90, 3)


def test_predict_and_checkpoint_errors_exit_2_naming_the_path(video, checkpoint, tmp_path, capsys):
    missing_video = tmp_path / "nope.mp4"
    assert main(["predict", str(missing_video), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o.mp4")]) == 2
    err = capsys.readouterr().err
    assert str(missing_video) in err and "Traceback" not in err and err.count("\n") == 1

    missing_checkpoint = tmp_path / "missing.pt"
    assert main(["predict", str(video), "--checkpoint", str(missing_checkpoint), "--out", str(tmp_path / "o.mp4")]) == 2
    assert str(missing_checkpoint) in capsys.readouterr().err

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    assert main(["predict", str(video), "--checkpoint", str(corrupt), "--out", str(tmp_path / "o.mp4")]) == 2
    assert str(corrupt) in capsys.readouterr().err

    short = tmp_path / "short"
    short.mkdir()
    imageio.imwrite(short / "0000.png", np.zeros((20, 20, 3), np.uint8))
    assert main(["predict", str(short), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o.mp4")]) == 2
    assert "needs 2 context frames" in capsys.readouterr().err
    assert main(["predict", str(video), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o.mov")]) == 2
    assert "o.mov must be an .mp4, .avi or .gif file, or a folder for PNG frames" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_console_script_reports_missing_video_without_traceback(tmp_path, checkpoint):
    script = Path(sys.executable).parent / "ifrvp"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ifrvp_core.cli"]
    missing = tmp_path / "missing_video.mp4"
    result = subprocess.run(command + ["predict", str(missing), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "x.mp4")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert str(missing) in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from ifrvp_core.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("synthetic_cli")
    write_synthetic(root, "test", 2, num_frames=6, height=64, width=96, seed=5, progress=False)
    return root


def test_evaluate_writes_json_and_csv(checkpoint, synthetic_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights"))
    output = tmp_path / "reports" / "results.json"
    code = main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "synthetic", "--data_root", str(synthetic_root),
                 "--steps", "3", "--baselines", "--batch-size", "2", "--device", "cpu", "--output", str(output), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "frame t+1*" in printed and "mean t+1..t+3*" in printed and "lpips: n/a (" in printed
    data = json.loads(output.read_text())
    assert list(data) == ["meta", "model", "copy_last", "dis_extrapolation", "prior_only"]
    meta = data["meta"]
    assert (meta["variant"], meta["checkpoint"], meta["written_by"]) == ("IFRNet_T", str(checkpoint.resolve()), "ifrvp evaluate")
    assert (meta["protocol"], meta["steps"], meta["samples"], meta["bgr_like_published"]) == ("synthetic", 3, 2, False)
    assert "alexnet-owt-7be5be79.pth" in meta["unavailable"]["lpips"]
    for method in ("model", "copy_last", "dis_extrapolation", "prior_only"):
        assert list(data[method]) == ["t+1", "t+2", "t+3", "t+1..t+1", "t+1..t+2", "t+1..t+3"]
        assert data[method]["t+2"]["lpips"] is None and data[method]["t+1..t+2"]["lpips"] is None
        assert 5 < data[method]["t+2"]["psnr"] < 60 and 0 < data[method]["t+2"]["ms_ssim"] <= 1
        for metric in ("psnr", "ssim", "ms_ssim"):
            frames = [data[method][f"t+{k}"][metric] for k in (1, 2, 3)]
            assert data[method]["t+1..t+3"][metric] == pytest.approx(sum(frames) / 3, rel=1e-12)
    assert "epe" in data["model"]["t+1"] and "epe" in data["dis_extrapolation"]["t+1"]
    rows = list(csv.DictReader(output.with_suffix(".csv").open()))
    assert {r["method"] for r in rows} == {"model", "copy_last", "dis_extrapolation", "prior_only"}
    row = next(r for r in rows if r["method"] == "dis_extrapolation" and r["step"] == "t+3" and r["metric"] == "ssim")
    assert row["form"] == "frame" and float(row["value"]) == pytest.approx(data["dis_extrapolation"]["t+3"]["ssim"])
    row = next(r for r in rows if r["method"] == "copy_last" and r["step"] == "t+1..t+2" and r["metric"] == "psnr")
    assert row["form"] == "running_mean" and float(row["value"]) == pytest.approx(data["copy_last"]["t+1..t+2"]["psnr"])

    baselines_only = tmp_path / "baselines.json"
    assert main(["evaluate", "--checkpoint", "none", "--baselines", "--dataset", "synthetic", "--data-root", str(synthetic_root),
                 "--steps", "2", "--output", str(baselines_only), "--no-progress", "--bgr-like-published"]) == 0
    data = json.loads(baselines_only.read_text())
    assert list(data) == ["meta", "copy_last", "dis_extrapolation", "prior_only"]
    assert data["meta"]["variant"] is None and data["meta"]["checkpoint"] is None and data["meta"]["bgr_like_published"] is True
    assert list(data["copy_last"]) == ["t+1", "t+2", "t+1..t+1", "t+1..t+2"]


def test_cli_and_notebook_write_the_same_results_contract(checkpoint, synthetic_root, tmp_path, monkeypatch):
    """`ifrvp evaluate` and notebook 05's helper, same checkpoint and data: same keys everywhere."""
    from ifrvp_core.checkpoint import load_model
    from ifrvp_core.evaluate import load_results
    from ifrvp_core.notebook_helpers import run_evaluation

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights"))
    cli_path = tmp_path / "cli" / "results.json"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "synthetic", "--data_root", str(synthetic_root),
                 "--steps", "3", "--baselines", "--device", "cpu", "--output", str(cli_path), "--no-progress"]) == 0
    notebook_results, written = run_evaluation(load_model(checkpoint), "synthetic", tmp_path / "notebook", checkpoint=checkpoint,
                                               data_root=synthetic_root, steps=3, progress=False, device="cpu")
    cli, notebook = json.loads(cli_path.read_text()), json.loads(written["json"].read_text())

    assert list(cli) == list(notebook) == ["meta", "model", "copy_last", "dis_extrapolation", "prior_only"]
    assert list(cli["meta"]) == list(notebook["meta"])
    for method in ("model", "copy_last", "dis_extrapolation", "prior_only"):
        assert list(cli[method]) == list(notebook[method])
        for step in cli[method]:
            assert list(cli[method][step]) == list(notebook[method][step]), (method, step)
            for metric, value in cli[method][step].items():  # same data, same model: same numbers
                other = notebook[method][step][metric]
                assert (other is None) if value is None else (value == pytest.approx(other, rel=1e-6)), (method, step, metric)
    same = ("variant", "checkpoint", "protocol", "dataset", "data_root", "steps", "samples", "bgr_like_published", "step_forms")
    assert {key: cli["meta"][key] for key in same} == {key: notebook["meta"][key] for key in same}
    assert (cli["meta"]["written_by"], notebook["meta"]["written_by"]) == ("ifrvp evaluate", "notebook 05_evaluation")
    assert load_results(cli_path).meta == cli["meta"] and list(load_results(written["json"])) == list(notebook_results)
    # the CSVs carry the same rows too
    cli_rows = [(r["method"], r["step"], r["form"], r["metric"]) for r in csv.DictReader(cli_path.with_suffix(".csv").open())]
    notebook_rows = [(r["method"], r["step"], r["form"], r["metric"]) for r in csv.DictReader(written["csv"].open())]
    assert cli_rows == notebook_rows
    headline = json.loads(written["headline"].read_text())
    assert headline["variant"] == "IFRNet_T" and set(headline["t+1"]) == {"model", "copy_last", "dis_extrapolation", "prior_only"}
    assert headline["t+1"]["model"] == notebook["model"]["t+1"]


def test_evaluate_protocol_on_another_dataset_is_named_for_both(synthetic_root, tmp_path, capsys, monkeypatch):
    """`--protocol kitti --dataset synthetic`: kitti's settings on synthetic frames are not the kitti
    protocol, so neither its name nor kitti's published DMVFN rows go with these numbers."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights"))
    output = tmp_path / "r.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # synthetic frames are not at kitti's 832x256
        assert main(["evaluate", "--checkpoint", "none", "--baselines", "--protocol", "kitti", "--dataset", "synthetic",
                     "--data_root", str(synthetic_root), "--steps", "2", "--output", str(output), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("protocol kitti on synthetic: 2 samples, t+1..t+2")
    assert "DMVFN (published" not in printed and "mean t+1..t+2" in printed
    meta = json.loads(output.read_text())["meta"]
    assert (meta["protocol"], meta["dataset"], meta["steps"]) == ("kitti on synthetic", "synthetic", 2)
    # the dataset's own protocol keeps its name
    assert main(["evaluate", "--checkpoint", "none", "--baselines", "--protocol", "synthetic", "--dataset", "Synthetic",
                 "--data_root", str(synthetic_root), "--steps", "1", "--output", str(output), "--no-progress"]) == 0
    assert json.loads(output.read_text())["meta"]["protocol"] == "synthetic"


def test_evaluate_user_errors(checkpoint, tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", "none", "--dataset", "synthetic", "--output", str(tmp_path / "r.json")]) == 2
    assert "without --baselines" in capsys.readouterr().err
    missing_root = tmp_path / "no_such_root"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "cityscapes", "--data_root", str(missing_root),
                 "--output", str(tmp_path / "r.json")]) == 2
    assert str(missing_root) in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "kitti2015", "--output", str(tmp_path / "r.json")]) == 2
    assert "--dataset must be one of synthetic, vimeo90k" in capsys.readouterr().err  # the flag, not "unknown protocol"
    with pytest.raises(SystemExit) as exit_info:  # argparse: bad option value
        main(["evaluate", "--checkpoint", "none", "--dataset", "synthetic", "--steps", "0", "--output", "r.json"])
    assert exit_info.value.code == 2


def test_interpolate_writes_frames_between_two_images(checkpoint, tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    imageio.imwrite(a, np.zeros((37, 50, 3), np.uint8))
    imageio.imwrite(b, np.full((37, 50, 3), 200, np.uint8))
    out = tmp_path / "mid"
    assert main(["interpolate", str(a), str(b), "--checkpoint", str(checkpoint), "--times", "0.25,0.5,0.75", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["interp_t0.250.png", "interp_t0.500.png", "interp_t0.750.png"]
    assert imageio.imread(out / "interp_t0.500.png").shape == (37, 50, 3)
    assert main(["interpolate", str(a), str(b), "--checkpoint", str(checkpoint), "--output", str(tmp_path / "new")]) == 0
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["interp_t0.500.png"]  # --output, the name --out had
    with pytest.raises(SystemExit):
        main(["interpolate", str(a), str(b), "--checkpoint", str(checkpoint), "--times", "half"])
    assert main(["interpolate", str(a), str(tmp_path / "c.png"), "--checkpoint", str(checkpoint)]) == 2
    assert str(tmp_path / "c.png") in capsys.readouterr().err


def test_train_passes_the_remaining_arguments(monkeypatch):
    import ifrvp_core.train as train

    seen = []
    monkeypatch.setattr(train, "main", lambda argv=None: seen.append(argv) or 0)
    assert main(["train", "--model_name", "IFRNet_T", "--max_steps", "3"]) == 0
    assert seen == [["--model_name", "IFRNet_T", "--max_steps", "3"]]


def test_write_video_pads_odd_sides_to_even(tmp_path):
    from ifrvp_core.predict import write_video

    frames = [np.full((71, 93, 3), 10 * i, np.uint8) for i in range(4)]
    path, count = write_video(iter(frames), tmp_path / "odd.mp4", fps=8)
    written, _ = _read_video(path)
    assert count == len(written) == 4 and written[0].shape == (72, 94, 3)
    assert abs(int(written[2][35, 46, 0]) - 20) <= 3  # content kept, not rescaled
    with pytest.raises(ValueError, match="no frames"):
        write_video(iter([]), tmp_path / "empty.mp4")
    assert not (tmp_path / "empty.mp4").exists()


def test_evaluate_baselines_on_a_cityscapes_layout(tmp_path, monkeypatch, capsys):
    """The issue's acceptance command on a one-snippet stand-in of leftImg8bit_sequence/val."""
    import cv2

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights"))
    snippet = tmp_path / "cityscapes" / "leftImg8bit_sequence" / "val" / "frankfurt"
    snippet.mkdir(parents=True)
    texture = np.random.default_rng(0).integers(0, 256, (48, 160, 3), dtype=np.uint8)
    texture = cv2.GaussianBlur(texture, (0, 0), 2.0)
    for frame in range(30):  # content moving 2 px right per frame
        assert cv2.imwrite(str(snippet / f"frankfurt_000001_{frame:06d}_leftImg8bit.png"), np.roll(texture, 2 * frame, axis=1)[:, :128])
    output = tmp_path / "r.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a stand-in is not at the protocol's resolution
        assert main(["evaluate", "--checkpoint", "none", "--baselines", "--dataset", "cityscapes", "--data_root",
                     str(tmp_path / "cityscapes"), "--output", str(output), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "DMVFN (published, demo)" in printed and "mean t+1..t+5*" in printed
    data = json.loads(output.read_text())
    assert list(data) == ["meta", "copy_last", "dis_extrapolation", "prior_only"]
    assert (data["meta"]["protocol"], data["meta"]["samples"], data["meta"]["steps"]) == ("cityscapes", 1, 5)
    for method in ("copy_last", "dis_extrapolation", "prior_only"):
        assert list(data[method]) == [f"t+{k}" for k in range(1, 6)] + [f"t+1..t+{k}" for k in range(1, 6)]
        psnr = [data[method][f"t+{k}"]["psnr"] for k in range(1, 6)]
        assert psnr[0] > psnr[4] + 3  # the further ahead, the worse
        for k in range(1, 6):
            assert data[method][f"t+1..t+{k}"]["psnr"] == pytest.approx(sum(psnr[:k]) / k, rel=1e-12)
    assert data["dis_extrapolation"]["t+1"]["psnr"] > data["copy_last"]["t+1"]["psnr"] + 3  # constant motion: DIS wins
    # the untrained twin warps along the same DIS flow (blending in the older frame): close to DIS here
    assert abs(data["prior_only"]["t+1"]["psnr"] - data["dis_extrapolation"]["t+1"]["psnr"]) < 3
    assert data["prior_only"]["t+1"]["psnr"] > data["copy_last"]["t+1"]["psnr"] + 3
