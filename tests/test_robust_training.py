"""Long runs: bad samples are replaced (deterministically) and counted, non-finite steps are skipped and counted,
robustness limits stop the run with a clear error, evaluation never skips, and the GPU check runs on CPU."""
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ifrvp_core.train.trainer as trainer_module
from ifrvp_core.checkpoint import load_file, load_model
from ifrvp_core.data import DataError, build_dataset
from ifrvp_core.evaluate import copy_last, evaluate
from ifrvp_core.losses import PredictionLoss
from ifrvp_core.train import Dist, TrainConfig, Trainer, main
from tiny_training import SEED, tiny_args

REPO = Path(__file__).resolve().parent.parent
def truncate(path: Path) -> None:
    """What a copy cut short leaves: the first half of a valid PNG."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def corrupt_data(tiny_data, tmp_path_factory):
    """The clean set with two truncated training frames (in 4 of the 16 windows) and one truncated test frame.

    clip_00001/00002.png is in the windows starting at frames 0, 1 and 2 of that clip; clip_00003/00005.png
    only in the last one. The test frame sits in the 4th test window, after the 2 that training validates.
    """
    root = tmp_path_factory.mktemp("corrupt") / "synthetic"
    shutil.copytree(tiny_data, root)
    planted = [root / "train" / "clip_00001" / "00002.png", root / "train" / "clip_00003" / "00005.png"]
    for path in planted + [root / "test" / "clip_00001" / "00004.png"]:
        truncate(path)
    return root, [str(p) for p in planted], str(root / "test" / "clip_00001" / "00004.png")


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------- config
def test_robustness_flags_parse_and_bad_values_are_named(tiny_data, tmp_path):
    defaults = TrainConfig.from_args([])
    assert (defaults.on_bad_sample, defaults.max_bad_samples, defaults.max_bad_steps) == ("skip", 100, 20)
    config = TrainConfig.from_args(["--on_bad_sample", "fail", "--max_bad_samples", "5", "--max_bad_steps", "3"])
    assert (config.on_bad_sample, config.max_bad_samples, config.max_bad_steps) == ("fail", 5, 3)
    with pytest.raises(ValueError, match="--on_bad_sample must be one of skip, fail; got 'sometimes'"):
        Trainer(TrainConfig.from_args(tiny_args(tiny_data, tmp_path, "r", on_bad_sample="sometimes")), Dist())
    with pytest.raises(ValueError, match="max_bad_steps >= 1, got 100 and 0"):
        Trainer(TrainConfig.from_args(tiny_args(tiny_data, tmp_path, "r", max_bad_steps=0)), Dist())


# ----------------------------------------------------------------------------- bad samples
def test_dataset_replaces_a_bad_sample_by_the_next_in_the_epoch_order(corrupt_data):
    root, planted, _ = corrupt_data
    common = dict(augment=False, seed=SEED, teacher_flow=False)
    skip = build_dataset("synthetic", root, "train", on_bad_sample="skip", **common)
    fail = build_dataset("synthetic", root, "train", **common)
    assert fail.on_bad_sample == "fail"  # the default: evaluation and notebooks never skip
    skip.set_epoch(1)
    fail.set_epoch(1)
    affected = [i for i, window in enumerate(skip.windows) if {str(f) for f in window.frames} & set(planted)]
    assert [skip.windows[i].name for i in affected] == ["clip_00001/00000", "clip_00001/00001", "clip_00001/00002", "clip_00003/00003"]
    from ifrvp_core.data import epoch_order

    order = epoch_order(len(skip), SEED, 1)
    for index in range(len(skip)):
        sample = skip[index]
        if index not in affected:
            assert sample["skipped_files"] == [] and sample["name"] == skip.windows[index].name
            continue
        with pytest.raises(DataError, match=re.escape(sample["skipped_files"][0])) as caught:
            fail[index]
        assert caught.value.path in planted
        # the first good sample after `index` in epoch 1's order, and the files of every bad one tried on the way
        chain, place = [], order.index(index)
        while order[place % len(order)] in affected:
            chain.append(order[place % len(order)])
            place += 1
        replacement = order[place % len(order)]
        assert len(sample["skipped_files"]) == len(chain) and set(sample["skipped_files"]) <= set(planted)
        assert sample["name"] == skip.windows[replacement].name
        assert torch.equal(sample["context"], fail[replacement]["context"])
    with pytest.raises(ValueError, match="on_bad_sample must be one of"):
        build_dataset("synthetic", root, "train", on_bad_sample="ignore", **common)


@pytest.fixture(scope="module")
def skip_run(corrupt_data, tmp_path_factory):
    """One epoch (8 steps: every window once) with `skip` over the 2 planted files: (log path, stdout)."""
    root, _, _ = corrupt_data
    log_path = tmp_path_factory.mktemp("skip_runs")
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(tiny_args(root, log_path, "a", max_steps=8)) == 0
    return log_path, out.getvalue()


def test_skip_trains_to_the_end_logs_each_file_once_and_is_deterministic(corrupt_data, skip_run, tmp_path):
    """A full epoch over 2 planted files; a second run with 2 DataLoader workers gives the same parameters."""
    root, planted, _ = corrupt_data
    first, out = skip_run
    shutil.copytree(first / "a", tmp_path / "a")
    assert main(tiny_args(root, tmp_path, "b", max_steps=8, num_workers=2)) == 0
    for name in planted:  # logged once, although clip_00001/00002.png is in 3 windows
        assert len([line for line in out.splitlines() if "skipped a bad sample" in line and name in line]) == 1
    dataset = build_dataset("synthetic", root, "train", on_bad_sample="skip", seed=SEED, teacher_flow=False)
    expected_skips = sum(len(dataset[i]["skipped_files"]) for i in range(len(dataset)))  # epoch 0 visits all 16
    assert expected_skips >= 4
    for run in ("a", "b"):
        records = read_log(tmp_path / run)
        bad = [r for r in records if r["kind"] == "bad_sample"]
        assert sorted(r["file"] for r in bad) == sorted(planted)
        train = [r for r in records if r["kind"] == "train"]
        assert [r["iteration"] for r in train] == list(range(1, 9))
        assert train[-1]["bad_samples"] == expected_skips and train[-1]["bad_files"] == 2 and train[-1]["bad_steps"] == 0
        summary = json.loads((tmp_path / run / "summary.json").read_text())
        assert summary["iterations"] == 8 and summary["bad_files"] == sorted(planted)
        assert summary["bad_samples"] == expected_skips and summary["bad_steps"] == 0
        assert load_file(tmp_path / run / "latest.pt")["robustness"]["bad_files"].keys() == set(planted)
    a, b = load_file(tmp_path / "a" / "latest.pt")["model"], load_file(tmp_path / "b" / "latest.pt")["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert all(bool(torch.isfinite(v).all()) for v in a.values())


def test_fail_stops_with_the_file_name(corrupt_data, tmp_path, capsys):
    root, planted, _ = corrupt_data
    assert main(tiny_args(root, tmp_path, "fail", max_steps=8, on_bad_sample="fail")) == 1
    err = capsys.readouterr().err
    assert "training failed: DataError" in err
    assert re.search("|".join(map(re.escape, planted)), err), err[-2000:]
    assert not (tmp_path / "fail" / "summary.json").exists()


def test_max_bad_samples_stops_with_the_list_of_files(corrupt_data, tmp_path, capsys):
    root, planted, _ = corrupt_data
    assert main(tiny_args(root, tmp_path, "limit", max_steps=8, max_bad_samples=1)) == 1
    err = capsys.readouterr().err
    assert "TrainingAborted: 2 bad files (more than --max_bad_samples 1)" in err
    assert all(name in err for name in planted)
    stopped = [r for r in read_log(tmp_path / "limit") if r["kind"] == "stopped"]
    assert len(stopped) == 1 and stopped[0]["reason"] == "max_bad_samples" and stopped[0]["bad_files"] == sorted(planted)


def test_evaluation_never_skips_a_bad_test_file(corrupt_data):
    root, _, bad_test_file = corrupt_data
    test_set = build_dataset("synthetic", root, "test", teacher_flow=False)
    with pytest.raises(DataError, match=re.escape(bad_test_file)):
        evaluate({"copy_last": copy_last}, test_set, steps=1, batch_size=2, device="cpu", progress=False)
    # even a dataset built to skip is refused, naming the file, rather than scored on a replacement
    skipping = build_dataset("synthetic", root, "test", teacher_flow=False, on_bad_sample="skip")
    with pytest.raises(DataError, match="does not skip bad samples.*" + re.escape(bad_test_file)):
        evaluate({"copy_last": copy_last}, skipping, steps=1, batch_size=2, device="cpu", progress=False)


# ----------------------------------------------------------------------------- bad steps
class NaNAtCalls(PredictionLoss):
    """The training loss, NaN at the given (1-based) calls: a planted AMP overflow / bad batch."""

    nan_calls: set = set()
    nan_from: int | None = None

    def forward(self, *args, **kwargs):
        self.calls = getattr(self, "calls", 0) + 1
        loss, terms = super().forward(*args, **kwargs)
        if self.calls in self.nan_calls or (self.nan_from is not None and self.calls >= self.nan_from):
            loss = loss * float("nan")
        return loss, terms


def test_non_finite_loss_or_gradient_skips_the_step_and_weights_are_never_saved_non_finite(tiny_data, tmp_path):
    trainer = Trainer(TrainConfig.from_args(tiny_args(tiny_data, tmp_path, "unit", max_steps=4)), Dist())
    batch = next(iter(trainer.loader))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    def unchanged():
        return all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())

    real_loss = trainer.loss_fn
    trainer.loss_fn = lambda *a: (lambda loss, terms: (loss * float("nan"), terms))(*real_loss(*a))
    lr, terms, ok = trainer.train_step(batch)
    assert not ok and math.isnan(terms["loss"]) and unchanged() and trainer.optimizer.state == {}
    trainer.loss_fn = real_loss
    parameter = next(trainer.model.parameters())
    hook = parameter.register_hook(lambda grad: grad * float("inf"))  # finite loss, infinite gradient
    lr, terms, ok = trainer.train_step(batch)
    hook.remove()
    assert not ok and math.isfinite(terms["loss"]) and not math.isfinite(terms["grad_norm"]) and unchanged()
    lr, terms, ok = trainer.train_step(batch)
    assert ok and math.isfinite(terms["grad_norm"]) and terms["grad_norm"] > 0 and not unchanged()

    trainer.run_dir.mkdir(parents=True)
    assert trainer.save("latest.pt") and (trainer.run_dir / "latest.pt").is_file()
    with torch.no_grad():
        parameter[0] = float("nan")
    assert trainer.save("best.pt") is False and not (trainer.run_dir / "best.pt").exists()
    assert trainer.save("latest.pt") is False
    assert bool(torch.isfinite(load_file(trainer.run_dir / "latest.pt")["model"][next(iter(before))]).all())


def test_injected_nan_loss_is_skipped_and_counted(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(NaNAtCalls, "nan_calls", {3, 4})
    monkeypatch.setattr(trainer_module, "PredictionLoss", NaNAtCalls)
    assert main(tiny_args(tiny_data, tmp_path, "nan", max_steps=6)) == 0
    assert capsys.readouterr().out.count("non-finite step at iteration") == 2
    records = read_log(tmp_path / "nan")
    bad = [r for r in records if r["kind"] == "bad_step"]
    assert [(r["iteration"], r["in_a_row"], r["bad_steps"], r["loss"]) for r in bad] == [(3, 1, 1, "nan"), (4, 2, 2, "nan")]
    train = {r["iteration"]: r for r in records if r["kind"] == "train"}
    assert [train[i]["bad_steps"] for i in range(1, 7)] == [0, 0, 1, 2, 2, 2]
    assert all(math.isfinite(train[i]["loss"]) for i in (1, 2, 5, 6)) and math.isnan(train[3]["loss"])
    summary = json.loads((tmp_path / "nan" / "summary.json").read_text())
    assert summary["bad_steps"] == 2 and summary["iterations"] == 6 and summary["bad_samples"] == 0
    latest = load_file(tmp_path / "nan" / "latest.pt")
    assert latest["iteration"] == 6 and latest["robustness"]["bad_steps"] == 2
    assert all(bool(torch.isfinite(v).all()) for v in latest["model"].values())


def test_max_bad_steps_stops_the_run_keeping_the_last_good_latest(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(NaNAtCalls, "nan_from", 3)
    monkeypatch.setattr(trainer_module, "PredictionLoss", NaNAtCalls)
    args = tiny_args(tiny_data, tmp_path, "diverged", max_steps=8, max_bad_steps=3, save_interval_steps=1)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "TrainingAborted: 3 non-finite steps in a row (iterations 3..5, --max_bad_steps 3" in err
    assert "latest.pt holds iteration 2, the last good state" in err
    run_dir = tmp_path / "diverged"
    latest = load_file(run_dir / "latest.pt")  # saved every step, but not after the skipped ones
    assert latest["iteration"] == 2 and latest["robustness"]["bad_steps"] == 0
    model = load_model(run_dir / "latest.pt")
    assert all(bool(torch.isfinite(v).all()) for v in model.state_dict().values())
    stopped = [r for r in read_log(run_dir) if r["kind"] == "stopped"]
    assert stopped == [{"kind": "stopped", "iteration": 5, "epoch": 0, "reason": "max_bad_steps", "bad_steps": 3, "latest_iteration": 2}]
    assert not (run_dir / "summary.json").exists()
    # the cause gone, --resume auto continues from the last good state to the end
    monkeypatch.setattr(NaNAtCalls, "nan_from", None)
    assert main(args + ["--resume=auto"]) == 0
    assert "resumed from" in capsys.readouterr().out
    train = [r["iteration"] for r in read_log(run_dir) if r["kind"] == "train"]
    assert train == [1, 2, 3, 4] + list(range(3, 9))  # the aborting step 5 has its bad_step and stopped records only
    assert [r["iteration"] for r in read_log(run_dir) if r["kind"] == "bad_step"] == [3, 4, 5]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["iterations"] == 8 and summary["bad_steps"] == 0  # the counts of the state resumed from


# ----------------------------------------------------------------------------- the GPU check
def test_gpu_check_on_cpu_says_so_and_exits_0(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no GPU present (torch.cuda.is_available() is False) — nothing to check" in done.stdout
    report = json.loads(out.read_text())
    assert report["gpu"] is None and report["cuda_available"] is False and report["sections"] == {}
    assert report["torch"] == torch.__version__


def test_gpu_check_dry_run_of_the_extrapolation_sections(tmp_path):
    """--cpu-dry-run of the prior's share, the export parity and inference (fp16, the DIS model): recorded and passing."""
    out = tmp_path / "dry.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--out", str(out), "--cpu-dry-run",
                           "--sections", "prior_share,export_parity,inference"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    sections = json.loads(out.read_text())["sections"]
    assert set(sections) == {"prior_share", "export_parity", "inference"}
    assert all(result["ok"] for result in sections.values())
    (row,) = sections["prior_share"]["inference"]
    assert row["size"] == "64x96" and row["dis_share"] > 0 and row["network_ms"] > 0  # one repeat each: no bound above
    step = sections["prior_share"]["training"]
    assert step["motion_prior"] == "dis" and step["steps_finite"] and step["step_ms_prior_given"] > 0
    exported = sections["export_parity"]
    assert exported["torchscript"]["max_abs_diff"] < 1e-4 and exported["torchscript_cpu_file"]["cpu_device_in_graph"]
    assert "skipped" in exported["onnx"] or exported["onnx"]["ok"]
    rows = sections["inference"]["rows"]
    assert {(r["prior"], r["precision"]) for r in rows} == {(p, q) for p in ("none", "dis") for q in ("fp32", "bf16", "fp16")}
    assert all("frames_per_s" in r or "skipped" in r for r in rows)
    assert "export torchscript" in done.stdout and "prior share of a training step" in done.stdout


@pytest.mark.slow
def test_two_ranks_skip_the_same_samples_and_count_them_globally(corrupt_data, skip_run, tmp_path):
    """2 DDP ranks x batch 1 see the samples of 1 rank x batch 2: the same replacements, counted over both ranks."""
    root, planted, _ = corrupt_data
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ifrvp_core.train",
         *tiny_args(root, tmp_path, "ddp", max_steps=8, batch_size=1, num_workers=1)],
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stdout
    single = json.loads((skip_run[0] / "a" / "summary.json").read_text())
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["bad_files"] == sorted(planted) == single["bad_files"]
    assert summary["bad_samples"] == single["bad_samples"] and summary["world_size"] == 2
    assert sorted(r["file"] for r in read_log(tmp_path / "ddp") if r["kind"] == "bad_sample") == sorted(planted)
    one, two = load_file(skip_run[0] / "a" / "latest.pt")["model"], load_file(tmp_path / "ddp" / "latest.pt")["model"]
    assert max((one[k] - v).abs().max().item() for k, v in two.items()) < 1e-4  # all-reduced gradients: float rounding only
