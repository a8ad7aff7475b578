"""One flag style for `ifrvp` and `data_prep`: both spellings, the same names, lists from the registries, clear errors."""
import argparse
import os
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

import data_prep.__main__ as data_prep_cli
from data_prep.verify import VERIFY_LAYOUTS
from ifrvp_core.cli import main
from ifrvp_core.data import DATASETS
from ifrvp_core.flags import add_flag, choice_error, choice_type, spellings
from ifrvp_core.protocols import PROTOCOLS

DATA_PREP_TOOLS = ("verify", "prepare_cityscapes", "prepare_kitti", "prepare_davis", "video_to_frames", "make_synthetic",
                   "downscale_cityscapes", "real_clips", "teacher_flow", "pack")


def _help(run, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(argv)
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def _options(help_text: str) -> set[str]:
    """Every --flag the help's options section shows."""
    return set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9_-]*", help_text.split("options:", 1)[1]))


def test_add_flag_registers_both_spellings_and_old_aliases():
    parser = argparse.ArgumentParser()
    add_flag(parser, "--data_root", "--root")
    add_flag(parser, "--no-progress", dest="progress", action="store_false")
    for argv in (["--data_root", "a"], ["--data-root", "a"], ["--root", "a"]):
        assert parser.parse_args(argv).data_root == "a"
    assert parser.parse_args(["--no_progress"]).progress is False and parser.parse_args([]).progress is True
    assert spellings("max-samples") == ["--max_samples", "--max-samples"] and spellings("--steps") == ["--steps"]


def test_choice_helpers_name_the_flag_the_values_and_the_closest():
    assert choice_error("--dataset", "vimeo", ["synthetic", "vimeo90k"]) == (
        "--dataset must be one of synthetic, vimeo90k; got 'vimeo' (did you mean 'vimeo90k'?)")
    assert "did you mean" not in choice_error("--dataset", "zzz", ["synthetic", "vimeo90k"])
    convert = choice_type(lambda: ["synthetic", "vimeo90k"])
    assert convert("Vimeo90K") == "vimeo90k"
    with pytest.raises(argparse.ArgumentTypeError, match="must be one of synthetic, vimeo90k; got 'vimo'"):
        convert("vimo")


@pytest.mark.parametrize("command", ["evaluate", "interpolate", "predict", "export"])
def test_every_ifrvp_flag_takes_both_spellings(command, capsys):
    options = _options(_help(main, [command, "--help"], capsys))
    multiword = {flag for flag in options if "_" in flag[2:]}
    assert multiword, options
    for flag in multiword:
        assert flag.replace("_", "-") in options, flag


@pytest.mark.parametrize("tool", DATA_PREP_TOOLS)
def test_every_data_prep_flag_takes_both_spellings_and_the_common_names(tool, capsys):
    options = _options(_help(data_prep_cli.main, [tool, "--help"], capsys))
    for flag in (flag for flag in options if "_" in flag[2:]):
        assert flag.replace("_", "-") in options, flag
    if tool not in ("video_to_frames", "real_clips"):  # the dataset folder: one name everywhere, the old one kept
        assert {"--data_root", "--data-root", "--root"} <= options
    if tool in ("downscale_cityscapes", "real_clips", "pack"):  # what a tool writes: --output, the old --out kept
        assert {"--output", "--out"} <= options
    assert ("--output" in options) == (tool in ("video_to_frames", "downscale_cityscapes", "real_clips", "pack"))


def test_data_prep_data_root_spellings_and_old_root_give_the_same_run(tmp_path, capsys):
    root = tmp_path / "syn"
    assert data_prep_cli.main(["make_synthetic", "--data-root", str(root), "--num_clips", "1", "--test-clips", "1",
                               "--frames", "4", "--size", "32x24"]) == 0
    assert {"test", "train"} <= {p.name for p in root.iterdir()}
    for flag in ("--data_root", "--data-root", "--root"):
        assert data_prep_cli.main(["verify", "--dataset", "synthetic", flag, str(root), "--workers", "1"]) == 0
        assert "synthetic" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        data_prep_cli.main(["verify", "--dataset", "synthetic"])
    assert exit_info.value.code == 2
    assert "required: --data_root/--data-root/--root" in capsys.readouterr().err


def test_data_prep_bad_values_name_the_flag(capsys):
    for argv, expected in (
        (["verify", "--dataset", "vimeo", "--data_root", "x"], "argument --dataset: must be one of " + ", ".join(VERIFY_LAYOUTS)
         + "; got 'vimeo' (did you mean 'vimeo90k'?)"),
        (["pack", "--dataset", "shards", "--data_root", "x", "--output", "y"], "argument --dataset: must be one of"),
        (["make_synthetic", "--data_root", "x", "--size", "big"], "argument --size: expected WxH like 640x360, got 'big'"),
        (["teacher_flow", "--dataset", "synthetic", "--data_root", "x", "--both-directions", "maybe"],
         "argument --both_directions/--both-directions: expected one of 1, true, yes, 0, false, no, got 'maybe'"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            data_prep_cli.main(argv)
        assert exit_info.value.code == 2
        assert expected in capsys.readouterr().err, argv


def test_video_to_frames_takes_out_dir_or_output(tmp_path, capsys):
    video = tmp_path / "v.mp4"
    writer = imageio.get_writer(video, fps=5, codec="libx264", pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="error")
    for i in range(3):
        writer.append_data(np.full((16, 16, 3), 60 * i, np.uint8))
    writer.close()
    assert data_prep_cli.main(["video_to_frames", str(video), "--output", str(tmp_path / "a")]) == 0
    assert data_prep_cli.main(["video_to_frames", str(video), str(tmp_path / "b")]) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "00000.png", "00001.png", "00002.png"]
    capsys.readouterr()
    assert data_prep_cli.main(["video_to_frames", str(video)]) == 2
    assert "give OUT_DIR or --output" in capsys.readouterr().err
    assert data_prep_cli.main(["video_to_frames", str(video), str(tmp_path / "c"), "--output", str(tmp_path / "d")]) == 2
    assert "differ" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_help_lists_come_from_the_registries(capsys):
    evaluate_help = " ".join(_help(main, ["evaluate", "--help"], capsys).split("options:", 1)[1].split())
    dataset_help = evaluate_help.split("--dataset DATASET", 1)[1].split("--data_root", 1)[0]
    assert f"one of {', '.join(DATASETS)};" in dataset_help and "ucf101" in dataset_help and "shards" in dataset_help
    protocol_help = evaluate_help.split("--protocol PROTOCOL", 1)[1]
    assert f"one of {', '.join(PROTOCOLS)} (default" in protocol_help
    pack_help = " ".join(_help(data_prep_cli.main, ["pack", "--help"], capsys).split("options:", 1)[1].split())
    folder_datasets = [name for name in DATASETS if name != "shards"]
    assert f"--dataset DATASET one of {', '.join(folder_datasets)} " in pack_help and "kitti" in folder_datasets


def test_evaluate_names_the_wrong_flag_before_loading_anything(tmp_path, capsys):
    missing = str(tmp_path / "missing.pt")  # checked after the names: its error would show if they came second
    cases = (
        (["--dataset", "vimeo"], "ifrvp evaluate: error: --dataset must be one of " + ", ".join(DATASETS)
         + "; got 'vimeo' (did you mean 'vimeo90k'?)"),
        (["--dataset", "synthetic", "--protocol", "kiti"], "--protocol must be one of " + ", ".join(PROTOCOLS)
         + "; got 'kiti' (did you mean 'kitti'?)"),
        (["--dataset", "ucf101"], "--dataset ucf101 has no protocol of its own: give --protocol, one of cityscapes"),
    )
    for extra, expected in cases:
        assert main(["evaluate", "--checkpoint", missing, *extra, "--output", str(tmp_path / "r.json")]) == 2
        err = capsys.readouterr().err
        assert expected in err and "missing.pt" not in err and err.count("\n") == 1, err


def test_version_prints_the_package_metadata(capsys):
    assert _help(main, ["--version"], capsys) == f"ifrvp {importlib.metadata.version('ifrvp')}\n"


def test_help_and_version_import_no_torch():
    code = ("import sys\nfrom ifrvp_core.cli import main\nfor argv in (['--help'], ['--version']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\nprint('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip().endswith("False"), result.stderr


def test_prep_forwards_everything_to_data_prep(tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(data_prep_cli, "main", lambda argv=None, prog="": seen.append((argv, prog)) or 3)
    assert main(["prep", "verify", "--help", "--x"]) == 3
    assert seen == [(["verify", "--help", "--x"], "ifrvp prep")]
    monkeypatch.undo()
    # and for real: the same tools, named `ifrvp prep` in their messages
    root = tmp_path / "syn"
    assert main(["prep", "make_synthetic", "--data_root", str(root), "--num-clips", "1", "--test-clips", "1", "--frames", "4",
                 "--size", "32x24"]) == 0
    assert main(["prep", "verify", "--dataset", "synthetic", "--root", str(root), "--workers", "1"]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["prep", "verify", "--dataset", "vimeo", "--data_root", str(root)])
    assert exit_info.value.code == 2
    assert "ifrvp prep verify: error: argument --dataset:" in capsys.readouterr().err


def test_evaluate_help_lists_the_registries_without_importing_torch():
    code = ("import atexit, sys; atexit.register(lambda: print('torch loaded:', 'torch' in sys.modules)); "
            "from ifrvp_core.cli import main; main(['evaluate', '--help'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert "ucf101" in result.stdout and "frames_heldout" in result.stdout
    assert result.stdout.strip().endswith("torch loaded: False")
