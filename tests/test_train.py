"""Training engine: config parsing, DDP equivalence, exact resume after SIGTERM / SIGKILL, checkpoint safety."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ifrvp_core.checkpoint import CheckpointError, load_file, load_model
from ifrvp_core.train import Dist, TrainConfig, Trainer, cosine_lr, main
from tiny_training import tiny_args

REPO = Path(__file__).resolve().parent.parent


def subprocess_env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def run_cli(args, nproc=1, timeout=120):
    prefix = [sys.executable]
    if nproc > 1:
        prefix += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return subprocess.run(
        prefix + ["-m", "ifrvp_core.train", *args], env=subprocess_env(), capture_output=True, text=True, timeout=timeout
    )


def assert_same_training_state(path_a, path_b):
    a, b = load_file(path_a), load_file(path_b)
    assert a["iteration"] == b["iteration"] and a["epoch"] == b["epoch"]
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for slot_a, slot_b in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(slot_a[name], slot_b[name]), name


# ----------------------------------------------------------------------------- config
def test_config_keeps_seed_defaults_and_flags_win_over_file(tmp_path):
    defaults = TrainConfig.from_args([])
    assert (defaults.model_name, defaults.epochs, defaults.batch_size) == ("IFRNet", 300, 12)
    assert (defaults.lr_start, defaults.lr_end, defaults.log_path) == (None, 1e-5, "checkpoint")
    # lr_start auto: IFRNet's 1e-4 where the published recipe applies (interpolation, or no prior), 5e-4 with the prior
    assert defaults.resolved_lr_start() == 5e-4 and defaults.prior_shift_input is True
    assert TrainConfig.from_args(["--task", "interpolate"]).resolved_lr_start() == 1e-4
    assert TrainConfig.from_args(["--motion_prior", "none"]).resolved_lr_start() == 1e-4
    assert TrainConfig.from_args(["--lr_start", "2e-4"]).resolved_lr_start() == 2e-4
    assert TrainConfig.from_args(["--lr_start", "auto"]).lr_start is None
    assert "prior_shift_input" in defaults.model_options()
    assert "prior_shift_input" not in TrainConfig.from_args(["--prior_shift_input", "false"]).model_options()
    assert "prior_shift_input" not in TrainConfig.from_args(["--motion_prior", "none"]).model_options()
    assert (defaults.resume_epoch, defaults.resume_path, defaults.dataset, defaults.task) == (0, None, "synthetic", "extrapolate")
    config_file = tmp_path / "run.yaml"
    config_file.write_text("batch_size: 6\nlr_start: 0.0002\nloss_census: 0.5\naugment: false\n")
    config = TrainConfig.from_args(["--config", str(config_file), "--batch_size", "3", "--resume_path", "None"])
    assert config.batch_size == 3 and config.lr_start == 2e-4 and config.augment is False
    assert config.loss_config().census == 0.5 and config.resume_path is None


def test_config_errors_name_the_key_and_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"batch_sise": 4}))
    with pytest.raises(SystemExit, match="batch_sise.*|bad.json"):
        TrainConfig.from_args(["--config", str(bad)])
    with pytest.raises(SystemExit, match="missing.yaml"):
        TrainConfig.from_args(["--config", str(tmp_path / "missing.yaml")])


def test_cosine_schedule_runs_from_lr_start_to_lr_end():
    assert cosine_lr(0, 100, 1e-4, 1e-5) == pytest.approx(1e-4)
    assert cosine_lr(50, 100, 1e-4, 1e-5) == pytest.approx(5.5e-5)
    assert cosine_lr(100, 100, 1e-4, 1e-5) == pytest.approx(1e-5)
    values = [cosine_lr(i, 100, 1e-4, 1e-5) for i in range(101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


# ----------------------------------------------------------------------------- one process, in-process
def test_training_writes_logs_checkpoints_and_summary(tiny_data, tmp_path):
    assert main(tiny_args(tiny_data, tmp_path, "run", max_steps=10, eval_interval=1, amp="bf16")) == 0
    run_dir = tmp_path / "run"
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    val = [r for r in records if r["kind"] == "val"]
    assert [r["iteration"] for r in train] == list(range(1, 11))
    # 16 windows / batch 2 = 8 steps per epoch: validation after epoch 1 and at the end (step 10)
    assert [(r["epoch"], r["iteration"]) for r in val] == [(1, 8), (1, 10)]
    assert train[0]["lr"] == pytest.approx(5e-4) and train[-1]["lr"] == pytest.approx(cosine_lr(9, 10, 5e-4, 1e-5))  # lr_start auto, with the prior
    for record in train:
        assert math.isfinite(record["loss"]) and record["samples_per_s"] > 0 and 0 <= record["data_wait_share"] <= 1
        assert {"rmse", "census", "geometry", "distillation"} <= set(record["terms"]) and "charbonnier" not in record["terms"]  # the prior recipe's reconstruction term
    for record in val:
        assert 5 < record["psnr"] < 60 and 0 < record["ssim"] <= 1 and record["samples"] == 2
    assert (run_dir / "log.csv").read_text().splitlines()[0].startswith("kind,iteration,epoch,lr,loss")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["iterations"] == 10 and summary["final"]["psnr"] == pytest.approx(val[-1]["psnr"])
    assert summary["lr_start"] == 5e-4  # what lr_start auto resolved to
    assert summary["best_psnr"] == pytest.approx(max(r["psnr"] for r in val))
    latest = load_file(run_dir / "latest.pt")  # weights_only=True
    assert latest["format"] == "ifrvp-checkpoint" and latest["model_name"] == "IFRNet_T"
    assert latest["iteration"] == 10 and latest["config"]["batch_size"] == 2 and latest["versions"]["torch"]
    assert latest["config"]["amp"] == "bf16"  # kept in the config, ignored (with a warning) on CPU
    assert {"torch", "numpy", "python"} <= set(latest["rng"])
    best = load_file(run_dir / "best.pt")
    assert best["metrics"]["psnr"] == pytest.approx(summary["best_psnr"])
    model = load_model(run_dir / "latest.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, latest["model"][key])


def test_corrupt_checkpoint_error_names_the_file(tiny_data, tmp_path):
    broken = tmp_path / "latest.pt"
    broken.write_bytes(b"PK\x03\x04 truncated")
    config = TrainConfig.from_args(tiny_args(tiny_data, tmp_path, "r", resume_path=broken))
    with pytest.raises(CheckpointError, match="latest.pt"):
        Trainer(config, Dist())
    assert main(tiny_args(tiny_data, tmp_path, "r", resume_path=broken)) == 1


def test_crash_during_save_keeps_previous_latest(tiny_data, tmp_path, monkeypatch):
    assert main(tiny_args(tiny_data, tmp_path, "crash", max_steps=2)) == 0
    latest = tmp_path / "crash" / "latest.pt"
    before = load_file(latest)
    trainer = Trainer(TrainConfig.from_args(tiny_args(tiny_data, tmp_path, "crash", max_steps=4, resume="auto")), Dist())
    assert trainer.iteration == 2
    real_save = torch.save

    def save_half_then_fail(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 partial write")  # what a full disk or a kill leaves in the temp file
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="No space"):
        trainer.save("latest.pt")
    monkeypatch.setattr(torch, "save", real_save)
    after = load_file(latest)
    assert after["iteration"] == before["iteration"] == 2
    assert all(torch.equal(after["model"][k], v) for k, v in before["model"].items())
    assert sorted(p.name for p in latest.parent.iterdir() if p.name.endswith(".tmp")) == []


# ----------------------------------------------------------------------------- multi-process
@pytest.mark.slow
def test_two_ranks_equal_one_rank_with_double_batch(tiny_data, tmp_path):
    """No batch-norm: one step of DDP (2 ranks x batch 2) == one step of 1 rank x batch 4 on the same samples."""
    common = dict(max_steps=1, augment="false", val_samples=2)
    single = run_cli(tiny_args(tiny_data, tmp_path, "one", batch_size=4, **common))
    assert single.returncode == 0, single.stderr[-3000:]
    double = run_cli(tiny_args(tiny_data, tmp_path, "two", batch_size=2, **common), nproc=2)
    assert double.returncode == 0, double.stderr[-3000:]
    assert "2 process(es)" in double.stdout
    one, two = load_file(tmp_path / "one" / "latest.pt"), load_file(tmp_path / "two" / "latest.pt")
    assert one["iteration"] == two["iteration"] == 1
    # the step really changed the weights, so the comparison below is not vacuous
    initial = Trainer(TrainConfig.from_args(tiny_args(tiny_data, tmp_path, "init", batch_size=4, **common)), Dist()).model
    moved = max((initial.state_dict()[k] - v).abs().max().item() for k, v in one["model"].items())
    assert moved > 1e-6
    worst = max((one["model"][k] - v).abs().max().item() for k, v in two["model"].items())
    assert worst < 1e-5
    # metrics are averaged across ranks: both configurations validate the same 2 samples
    val_one = json.loads((tmp_path / "one" / "summary.json").read_text())["final"]
    val_two = json.loads((tmp_path / "two" / "summary.json").read_text())["final"]
    assert val_two["samples"] == 2 and val_two["psnr"] == pytest.approx(val_one["psnr"], abs=1e-3)


@pytest.mark.slow
def test_same_command_on_the_same_machine_gives_bit_identical_parameters(tiny_data, tmp_path):
    """The reproducibility the README promises: two 2-process DDP runs with data workers and augmentation -> equal bits.

    (Figures differ across CPU types, whose kernels round differently; on one machine they must not.)
    """
    common = dict(max_steps=4, num_workers=2, val_samples=2)  # augmentation on (the default), 2 loader workers per rank
    runs = [run_cli(tiny_args(tiny_data, tmp_path, name, **common), nproc=2) for name in ("first", "second")]
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
        assert "2 process(es)" in run.stdout
    assert_same_training_state(tmp_path / "first" / "latest.pt", tmp_path / "second" / "latest.pt")
    losses = [[r["loss"] for r in map(json.loads, (tmp_path / name / "log.jsonl").read_text().splitlines()) if r["kind"] == "train"]
              for name in ("first", "second")]
    assert len(losses[0]) == 4 and losses[0] == losses[1]  # every logged loss, exactly
    # training really moved the weights, so equality is not the trivial one of two untouched models
    initial = Trainer(TrainConfig.from_args(tiny_args(tiny_data, tmp_path, "init", **common)), Dist()).model.state_dict()
    final = load_file(tmp_path / "first" / "latest.pt")["model"]
    assert max((initial[k] - v).abs().max().item() for k, v in final.items()) > 1e-6


def _start_and_interrupt(args, signum, min_iteration, latest, timeout=60):
    process = subprocess.Popen(
        [sys.executable, "-m", "ifrvp_core.train", *args], env=subprocess_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if latest.exists():
            try:
                if load_file(latest)["iteration"] >= min_iteration:
                    break
            except CheckpointError:
                pass
        time.sleep(0.02)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_interrupted_run_resumes_bit_exact(tiny_data, tmp_path, signum):
    """Kill a run mid-epoch, resume from latest.pt with --resume auto: same weights as a run never interrupted."""
    total = 40  # 8 steps per epoch: crosses epochs, and the kill lands mid-epoch
    args = lambda name, **extra: tiny_args(tiny_data, tmp_path, name, max_steps=total, save_interval_steps=3, eval_interval=2, **extra)
    assert main(args("reference")) == 0

    latest = tmp_path / "killed" / "latest.pt"
    code, stderr = _start_and_interrupt(args("killed"), signum, 3, latest)
    interrupted_at = load_file(latest)["iteration"]
    assert 3 <= interrupted_at < total, "the run finished before it could be interrupted"
    if signum == signal.SIGTERM:  # finishes the step, saves latest, exits 128 + 15
        assert code == 128 + signal.SIGTERM, stderr[-2000:]
    else:
        assert code == -signal.SIGKILL and interrupted_at % 3 == 0

    resumed = run_cli(args("killed", resume="auto"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"iteration {interrupted_at}" in resumed.stdout
    assert_same_training_state(tmp_path / "reference" / "latest.pt", latest)
    # the log continues where the saved state left off
    iterations = [r["iteration"] for r in map(json.loads, (tmp_path / "killed" / "log.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    assert iterations[-1] == total and sorted(set(iterations)) == list(range(1, total + 1))


def test_log_csv_rows_follow_the_header_of_a_run_written_by_an_earlier_version(tmp_path):
    import csv

    from ifrvp_core.train.runlog import RunLog, csv_columns

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "log.csv").write_text("kind,iteration,loss\ntrain,1,0.5\n")
    RunLog(run_dir, main=True).write({"kind": "train", "iteration": 2, "loss": 0.25, "main_process_dis_calls": 0,
                                      "terms": {"census": 0.1}})
    rows = list(csv.DictReader(open(run_dir / "log.csv", newline="")))
    assert csv_columns(run_dir / "log.csv") == ["kind", "iteration", "loss"]
    assert rows[-1] == {"kind": "train", "iteration": "2", "loss": "0.25"}
