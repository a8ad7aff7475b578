"""The training command line: help from `TrainConfig`, both flag spellings, fast `--help`, checked values,
a crop that fits the data, run folders that already hold a run, the TensorBoard-off line."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ifrvp_core import motion_prior
from ifrvp_core.data import DATASETS
from ifrvp_core.data import sample
from ifrvp_core.data.datasets import BAD_SAMPLE_MODES
from ifrvp_core.models import list_models
from ifrvp_core.protocols import PROTOCOLS
from ifrvp_core.registry_names import PROTOCOL_NAMES
from ifrvp_core.train import Dist, TrainConfig, Trainer, main
from ifrvp_core.train import runlog
from ifrvp_core.train.config import BAD_SAMPLE_CHOICES, DATASET_NAMES, FLOW_REGIONS, MODEL_NAMES, MOTION_PRIORS, ConfigError, argument_parser
import fake_datasets as fake
from tiny_training import tiny_args

REPO = Path(__file__).resolve().parent.parent


def subprocess_env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def flag_help_lines(text: str) -> dict:
    """{flag: its help text} from argparse's --help output (a flag's text may start on its line or the next)."""
    entries, current = {}, None
    for line in text.splitlines():
        stripped = line.strip()
        if line.startswith("  --"):  # a flag's own line; its wrapped help is indented further
            current = stripped.split()[0].rstrip(",")
            entries[current] = stripped.split("  ", 1)[1].strip() if "  " in stripped else ""
        elif current is not None and stripped:
            entries[current] += " " + stripped
    return entries


# ----------------------------------------------------------------------------- help
def test_every_flag_has_help_text_and_shows_its_default():
    text = argument_parser().format_help()
    entries = flag_help_lines(text)
    fields = [f"--{item.name}" for item in dataclasses.fields(TrainConfig)]
    assert set(fields) <= set(entries), sorted(set(fields) - set(entries))
    for name, help_text in entries.items():
        assert "(default:" in help_text, name
        assert help_text.split("(default:")[0].strip(), f"{name} has no help text"
    assert "one of none, bf16, fp16 (default: none)" in " ".join(entries["--amp"].split())


def test_help_comes_from_the_fields_metadata():
    for item in dataclasses.fields(TrainConfig):
        assert item.metadata.get("help"), f"TrainConfig.{item.name} has no help metadata"


def test_lists_shown_in_help_equal_the_registries():
    """The choices `--help` shows without importing torch are the registries' own."""
    assert list(MODEL_NAMES) == list_models()
    assert tuple(DATASET_NAMES) == tuple(DATASETS)
    assert FLOW_REGIONS == sample.FLOW_REGIONS
    assert list(PROTOCOL_NAMES) == list(PROTOCOLS)
    assert set(BAD_SAMPLE_CHOICES) == set(BAD_SAMPLE_MODES)
    assert MOTION_PRIORS == ("auto", *motion_prior.MOTION_PRIORS)


def test_train_help_imports_no_heavy_module():
    code = ("import sys; from ifrvp_core.cli import main\n"
            "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'torchvision', 'cv2', 'ifrvp_core.train.trainer') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert "--data_root, --data-root" in done.stdout
    assert "HEAVY []" in done.stdout, done.stdout[-500:]


def test_both_spellings_set_the_same_field():
    a = TrainConfig.from_args(["--data_root", "x", "--max-steps", "7", "--crop-size", "64"])
    assert (a.data_root, a.max_steps, a.crop_size) == ("x", 7, 64)
    assert TrainConfig.from_args(["--data-root", "y"]).data_root == "y"


def test_a_bool_flag_alone_means_true_and_takes_a_value():
    assert TrainConfig.from_args(["--overwrite"]).overwrite is True
    assert TrainConfig.from_args(["--augment", "false"]).augment is False


# ----------------------------------------------------------------------------- bad values
@pytest.mark.parametrize("flag, value, expected", [
    ("--amp", "bf61", "--amp must be one of none, bf16, fp16; got 'bf61' (did you mean 'bf16'?)"),
    ("--resume", "autoo", "--resume must be 'auto' or an existing checkpoint file; got 'autoo' (did you mean 'auto'?)"),
    ("--task", "extrapolat", "--task must be one of extrapolate, interpolate; got 'extrapolat' (did you mean 'extrapolate'?)"),
    ("--motion_prior", "diss", "--motion_prior must be one of auto, none, dis, lucas_kanade; got 'diss' (did you mean 'dis'?)"),
    ("--teacher_flow", "disc", "--teacher_flow must be one of auto, disk, dis, none; got 'disc' (did you mean"),
    ("--on_bad_sample", "skipp", "--on_bad_sample must be one of skip, fail; got 'skipp' (did you mean 'skip'?)"),
    ("--dataset", "vimeo", "--dataset must be one of synthetic, vimeo90k,"),
    ("--model_name", "IFRNet_XS", "--model_name must be one of IFRNet, IFRNet_L, IFRNet_S, IFRNet_T, IFRNet_ELAN; got 'IFRNet_XS' (did you mean"),
    ("--crop_size", "0", "--crop_size must be a positive integer or 'auto'; got 0"),
    ("--loss_rmse", "-1", "--loss_rmse must be a finite weight >= 0 (0 switches the term off) or auto; got -1.0"),
    ("--loss_census", "nan", "--loss_census must be a finite weight >= 0 (0 switches the term off); got nan"),
])
def test_bad_values_name_the_flag_and_the_valid_values(flag, value, expected, capsys):
    with pytest.raises(ConfigError) as raised:
        TrainConfig.from_args([flag, value])
    assert str(raised.value).startswith(expected), str(raised.value)
    assert main([flag, value]) == 2
    assert f"ifrvp train: error: {expected}" in capsys.readouterr().err


def test_all_loss_weights_zero_is_refused():
    zeros = [value for term in ("charbonnier", "census", "geometry", "distillation", "rmse") for value in (f"--loss_{term}", "0")]
    with pytest.raises(ConfigError, match="every loss weight is 0 .*loss_rmse.*nothing to train"):
        TrainConfig.from_args(zeros)
    assert TrainConfig.from_args(zeros[:-2] + ["--loss_rmse", "1"]).loss_config().rmse == 1.0
    # --loss_charbonnier 0 alone leaves RMSE's auto at 1: one reconstruction term stays
    assert TrainConfig.from_args(zeros[:-2]).loss_config().rmse == 1.0


@pytest.mark.parametrize("argv, charbonnier, rmse", [
    ([], 0.0, 1.0),                                               # extrapolation with the DIS prior: RMSE
    (["--motion_prior", "none"], 1.0, 0.0),                       # the published network: IFRNet's Charbonnier
    (["--task", "interpolate"], 1.0, 0.0),
    (["--loss_rmse", "0"], 1.0, 0.0),                             # switching RMSE off brings Charbonnier back
    (["--loss_charbonnier", "1"], 1.0, 0.0),                      # naming Charbonnier makes it the one term
    (["--loss_charbonnier", "0", "--motion_prior", "none"], 0.0, 1.0),
    (["--loss_rmse", "2", "--task", "interpolate"], 0.0, 2.0),
    (["--loss_charbonnier", "0.5", "--loss_rmse", "1"], 0.5, 1.0),  # both given: both used
    (["--loss_charbonnier", "auto", "--loss_rmse", "auto"], 0.0, 1.0),
])
def test_the_reconstruction_term_auto(argv, charbonnier, rmse):
    weights = TrainConfig.from_args(argv).loss_config()
    assert (weights.charbonnier, weights.rmse) == (charbonnier, rmse)


@pytest.mark.parametrize("flag, value, expected", [
    ("--loss_charbonnier", "much", "expected a loss weight such as 1 or 0, or 'auto'; got 'much'"),
    ("--lr_start", "fast", "expected a learning rate such as 5e-4, or 'auto'; got 'fast'"),
])
def test_unparsable_auto_values_name_the_flag(flag, value, expected, capsys):
    with pytest.raises(SystemExit):
        TrainConfig.from_args([flag, value])
    assert f"argument {flag}/--{flag[2:].replace('_', '-')}: {expected}" in capsys.readouterr().err


def test_a_config_file_may_spell_the_reconstruction_weights_auto(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("loss_charbonnier: auto\nloss_rmse: auto\nmotion_prior: none\n")
    config = TrainConfig.from_args(["--config", str(path)])
    assert (config.loss_charbonnier, config.loss_rmse) == (None, None)
    assert config.loss_weights()["charbonnier"] == 1.0 and config.loss_weights()["rmse"] == 0.0


def test_a_far_miss_gets_no_did_you_mean():
    with pytest.raises(ConfigError) as raised:
        TrainConfig.from_args(["--amp", "float32"])
    assert "did you mean" not in str(raised.value)


def test_names_match_case_insensitively_as_the_builders_do():
    config = TrainConfig.from_args(["--model_name", "ifrnet_t", "--dataset", "Synthetic"])
    assert config.model_name == "ifrnet_t"


def test_a_bad_value_from_a_config_file_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("amp: bf61\n")
    with pytest.raises(ConfigError, match=f"'amp' in {path} must be one of none, bf16, fp16; got 'bf61'"):
        TrainConfig.from_args(["--config", str(path)])
    # a flag overrides the file's value, and then the flag is named
    with pytest.raises(ConfigError, match="^--amp must be one of"):
        TrainConfig.from_args(["--config", str(path), "--amp", "fp61"])


def test_resume_takes_auto_or_an_existing_checkpoint(tmp_path):
    checkpoint = tmp_path / "latest.pt"
    checkpoint.write_bytes(b"")
    assert TrainConfig.from_args(["--resume", str(checkpoint)]).resume == str(checkpoint)
    assert TrainConfig.from_args(["--resume", "auto"]).resume == "auto"
    with pytest.raises(ConfigError, match="--resume_path: checkpoint not found"):
        TrainConfig.from_args(["--resume_path", str(tmp_path / "missing.pt")])
    with pytest.raises(ConfigError, match="--overwrite .* and --resume .* contradict"):
        TrainConfig.from_args(["--resume", "auto", "--overwrite"])


def test_unknown_protocol_is_named():
    with pytest.raises(ConfigError, match="--protocol must be one of .*got 'cityscape' \\(did you mean 'cityscapes'\\?\\)"):
        TrainConfig.from_args(["--protocol", "cityscape"])


# ----------------------------------------------------------------------------- the crop
def test_default_crop_fits_the_generated_synthetic_set_and_is_ifrnets_on_disk():
    assert TrainConfig(dataset="synthetic").resolved_crop_size() == 128
    assert TrainConfig(dataset="vimeo90k", data_root="x").resolved_crop_size() == 224
    assert TrainConfig(dataset="synthetic", data_root="x", crop_size=32).resolved_crop_size() == 32


def test_a_crop_larger_than_the_synthetic_set_fails_before_generating_it(tmp_path, monkeypatch):
    from ifrvp_core.train import trainer as trainer_module

    def no_generation(*args, **kwargs):
        raise AssertionError("the dataset was built before the crop was checked")

    monkeypatch.setattr(trainer_module, "build_dataset", no_generation)
    with pytest.raises(ValueError, match=r"--crop_size 256 is larger than the training frames \(128x192, the generated "
                                         r"synthetic set\); pass --crop_size 128 or smaller"):
        Trainer(TrainConfig(crop_size=256, log_path=str(tmp_path)), Dist())
    assert not (tmp_path / "IFRNet_synthetic_extrapolate").exists()


def test_a_crop_larger_than_the_data_on_disk_fails_before_the_model_is_built(tiny_data, tmp_path, monkeypatch):
    from ifrvp_core.train import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "build_model", lambda *a, **k: pytest.fail("the model was built"))
    config = TrainConfig.from_args(tiny_args(tiny_data, tmp_path, "big", crop_size=None))
    with pytest.raises(ValueError, match=r"the default --crop_size \(auto: 224 for data on disk\) is larger than the "
                                         r"training frames \(48x64, the smallest training clip of synthetic.*pass --crop_size 48"):
        Trainer(config, Dist())


# ----------------------------------------------------------------------------- run folders
def test_a_run_folder_that_holds_a_run_is_refused_unless_resume_or_overwrite(tiny_data, tmp_path, capsys):
    args = lambda **extra: tiny_args(tiny_data, tmp_path, "run", **{"max_steps": 2, "val_samples": 0, **extra})  # noqa: E731
    assert main(args()) == 0
    run_dir = tmp_path / "run"
    lines_before = (run_dir / "log.jsonl").read_text()
    capsys.readouterr()
    assert main(args()) == 2  # refused before the heavy imports, as a bad flag is
    err = capsys.readouterr().err
    assert f"run folder {run_dir} already holds a run (it has config.json, log.jsonl" in err
    assert "--resume auto" in err and "--overwrite" in err
    assert (run_dir / "log.jsonl").read_text() == lines_before  # nothing appended, nothing replaced
    with pytest.raises(ValueError, match="already holds a run"):  # the trainer itself (every rank, under torchrun)
        Trainer(TrainConfig.from_args(args()), Dist())
    assert (run_dir / "log.jsonl").read_text() == lines_before

    assert main(args(overwrite=True)) == 0
    assert "--overwrite: deleted the previous run's" in capsys.readouterr().out
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if r["kind"] == "train"] == [1, 2]  # afresh: the old records are gone

    assert main(args(max_steps=3, resume="auto")) == 0
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if r["kind"] == "train"] == [1, 2, 3]  # continued


def test_a_folder_with_other_files_only_is_not_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert runlog.existing_run_files(tmp_path) == []
    (tmp_path / "latest.pt").write_bytes(b"")
    assert runlog.existing_run_files(tmp_path) == ["latest.pt"]
    assert runlog.clear_run(tmp_path) == ["latest.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# ----------------------------------------------------------------------------- TensorBoard
def test_training_says_once_that_tensorboard_is_off(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runlog, "open_tensorboard", lambda run_dir: None)
    runlog.RunLog(tmp_path, True).start({})
    out = capsys.readouterr().out
    assert out.count("TensorBoard logging is off: the tensorboard package is not installed") == 1
    assert "pip install tensorboard" in out


def test_no_tensorboard_line_when_it_is_on(tmp_path, monkeypatch, capsys):
    class Writer:
        def close(self):
            pass

    monkeypatch.setattr(runlog, "open_tensorboard", lambda run_dir: Writer())
    runlog.RunLog(tmp_path, True).start({})
    assert "TensorBoard" not in capsys.readouterr().out


def test_the_workbooks_second_run_into_its_folder_still_trains(tiny_data, tmp_path):
    """Notebook 03 (and so `make workbook` run twice) sets the previous run aside before training into `run_name`."""
    from ifrvp_core.workbook.profiles import set_aside_old_run

    args = tiny_args(tiny_data, tmp_path, "workbook", max_steps=1, val_samples=0)
    assert main(args) == 0
    set_aside_old_run(tmp_path, "workbook", None)
    assert main(args) == 0
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("workbook")]) == 2  # the old run kept aside


def test_val_samples_0_trains_on_clips_too_short_for_a_test_split(tmp_path):
    """12-frame clips leave no window in `frames`' last 10 %: without validation they still train."""
    rng = np.random.default_rng(0)
    for clip in range(2):
        folder = tmp_path / "clips" / f"clip_{clip}"
        folder.mkdir(parents=True)
        for index in range(12):
            cv2.imwrite(str(folder / f"{index:05d}.png"), rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    args = ["--dataset", "frames", "--data_root", str(tmp_path / "clips"), "--model_name", "IFRNet_T", "--crop_size", "32",
            "--batch_size", "2", "--num_workers", "0", "--max_steps", "1", "--log_path", str(tmp_path / "runs")]
    with pytest.raises(Exception, match="no samples found"):
        Trainer(TrainConfig.from_args(args), Dist())
    summary = Trainer(TrainConfig.from_args(args + ["--val_samples", "0", "--overwrite"]), Dist()).run()
    assert summary["iterations"] == 1


def test_a_crop_larger_than_the_size_data_is_resized_to_fails_without_reading_frames(tmp_path, monkeypatch):
    root = fake.cityscapes(fake.cityscapes(tmp_path / "cs", "val", size=(16, 32)), "train",
                           snippets=(("aachen", "000000", 0, 4),), size=(16, 32))
    monkeypatch.setattr("ifrvp_core.data.datasets.WindowDataset.load_frame",
                        lambda self, frame: pytest.fail("the resized size is known without reading a frame"))
    config = TrainConfig.from_args(["--dataset", "cityscapes", "--data_root", str(root), "--crop_size", "600",
                                    "--log_path", str(tmp_path / "runs"), "--num_workers", "0"])
    with pytest.raises(ValueError, match=r"--crop_size 600 is larger than the training frames \(512x1024, .*resized at load"):
        Trainer(config, Dist())


def test_learning_rates_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="^--lr_start must be a positive number or auto; got -0.001"):
        TrainConfig.from_args(["--lr_start=-1e-3"])
    with pytest.raises(ConfigError, match="^--lr_end must be a positive number; got 0.0"):
        TrainConfig.from_args(["--lr_end", "0"])
    path = tmp_path / "run.yaml"
    path.write_text("lr_start: fast\n")
    with pytest.raises(ConfigError, match=f"'lr_start' in {path} must be a positive number or auto; got 'fast'"):
        TrainConfig.from_args(["--config", str(path)])
    with pytest.raises(SystemExit):
        TrainConfig.from_args(["--lr_start", "fast"])
    path.write_text("lr_start: auto\n")
    assert TrainConfig.from_args(["--config", str(path)]).resolved_lr_start() == 5e-4


def test_an_auto_flag_wins_over_the_config_file(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("lr_start: 2.0e-4\nloss_charbonnier: 1.0\ncrop_size: 64\n")
    from_file = TrainConfig.from_args(["--config", str(path)])
    assert (from_file.resolved_lr_start(), from_file.loss_weights()["rmse"], from_file.resolved_crop_size()) == (2e-4, 0.0, 64)
    flags = TrainConfig.from_args(["--config", str(path), "--lr_start", "auto", "--loss_charbonnier", "auto", "--crop_size", "auto"])
    assert (flags.lr_start, flags.loss_charbonnier, flags.crop_size) == (None, None, None)
    assert flags.resolved_lr_start() == 5e-4 and flags.loss_weights()["rmse"] == 1.0 and flags.resolved_crop_size() == TrainConfig().resolved_crop_size()
