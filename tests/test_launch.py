"""launch_training: the notebook entry point runs the real trainer in fresh processes."""
import io
import os
import subprocess
import time

import pytest

from ifrvp_core.launch import TrainingFailed, build_command, launch_training, output_lines, read_log
from ifrvp_core.train import TrainConfig
from ifrvp_core.train import launch as launch_module


def tiny_config(data_root, log_path, **extra):
    return dict(
        model_name="IFRNet_T", dataset="synthetic", data_root=str(data_root), crop_size=32, batch_size=2,
        num_workers=0, log_path=str(log_path), log_interval=1, val_samples=2, val_batch_size=1, epochs=50, **extra,
    )


THREADS = {"OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_two_process_job_returns_summary_and_streams_lines(tiny_data, tmp_path, capsys):
    config = TrainConfig(**tiny_config(tiny_data, tmp_path))  # a TrainConfig works as well as a dict
    result = launch_training(nproc=2, config=config, run_name="nb", max_steps=3, env=THREADS)
    assert result.returncode == 0
    assert result.run_dir == (tmp_path / "nb").resolve() and result.log_path.is_file()
    assert result.summary["iterations"] == 3 and result.summary["world_size"] == 2
    assert 5 < result.summary["final"]["psnr"] < 60
    printed = capsys.readouterr().out
    assert "2 process(es)" in printed and "\r" not in printed
    assert any(line.startswith("train:") and "3/3" in line for line in result.output)  # tqdm, one line per update
    train = read_log(result.run_dir, kind="train")
    assert [r["iteration"] for r in train] == [1, 2, 3]
    assert read_log(result.run_dir, kind="val")[-1]["psnr"] == pytest.approx(result.summary["final"]["psnr"])


@pytest.mark.slow
def test_failing_job_raises_with_log_tail(tiny_data, tmp_path):
    # the crop is only found too large inside the job, on the first training frame
    with pytest.raises(TrainingFailed, match=r"training failed: ConfigError: --crop_size 512 is larger than the training frames") as caught:
        launch_training(nproc=2, config=tiny_config(tiny_data, tmp_path), crop_size=512, echo=False, env=THREADS)
    assert caught.value.returncode != 0 and caught.value.log_tail.count("\n") >= 5


def test_unknown_option_is_rejected_before_starting(tmp_path):
    with pytest.raises(ValueError, match="batch_sise"):
        launch_training(nproc=1, batch_sise=4)
    with pytest.raises(ValueError, match="dataset must be one of .*; got 'vimeo9000'"):
        launch_training(nproc=1, dataset="vimeo9000", log_path=str(tmp_path))
    assert not any(tmp_path.iterdir())
    with pytest.raises(TypeError, match="config must be"):
        launch_training(nproc=1, config=["--epochs", "1"])
    with pytest.raises(ValueError, match="nproc"):
        build_command(0, tmp_path / "c.json")


def test_command_uses_torchrun_only_for_several_processes(tmp_path):
    single = build_command(1, tmp_path / "c.json")
    assert single[1:] == ["-m", "ifrvp_core.train", "--config", str(tmp_path / "c.json")]
    double = build_command(2, tmp_path / "c.json")
    assert double[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert double[5:7] == ["-m", "ifrvp_core.train"]


def test_tqdm_carriage_returns_become_lines():
    stream = io.BytesIO(b"run folder x\ntrain: 1/3\rtrain: 2/3\r\ntrain: 3/3\rdone")
    assert list(output_lines(stream)) == ["run folder x", "train: 1/3", "train: 2/3", "train: 3/3", "done"]


def test_quiet_stream_yields_ticks_between_lines():
    read_end, write_end = os.pipe()
    os.write(write_end, b"first\n")
    with os.fdopen(read_end, "rb", buffering=0) as stream:
        lines = output_lines(stream, tick_s=0.05)
        assert next(lines) == "first"
        assert next(lines) is None  # nothing new for 0.05 s: a tick for the live curves
        os.write(write_end, b"second\n")
        os.close(write_end)
        assert [line for line in lines if line is not None] == ["second"]


def test_read_log_skips_a_half_written_line(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"kind": "train", "iteration": 1}\n{"kind": "val", "psnr": 30}\n{"kind": "tr')
    assert read_log(tmp_path) == [{"kind": "train", "iteration": 1}, {"kind": "val", "psnr": 30}]
    assert read_log(tmp_path, kind="val") == [{"kind": "val", "psnr": 30}]
    assert read_log(tmp_path / "missing") == []


@pytest.mark.slow
def test_interrupted_cell_stops_the_whole_process_group(tiny_data, tmp_path, monkeypatch):
    """KeyboardInterrupt in the cell -> SIGTERM to torchrun and both workers; latest.pt is saved; nothing is left."""
    started = []
    real_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    real_lines = launch_module.output_lines

    def interrupt_after_training_starts(stream, **kwargs):
        for line in real_lines(stream, **kwargs):
            yield line
            if line is not None and line.startswith("IFRNet_T on synthetic"):
                while not read_log(tmp_path / "cut", kind="train"):  # a few steps are done
                    time.sleep(0.05)
                raise KeyboardInterrupt  # what Jupyter's stop button raises in the cell

    monkeypatch.setattr(launch_module.subprocess, "Popen", recording_popen)
    monkeypatch.setattr(launch_module, "output_lines", interrupt_after_training_starts)
    config = tiny_config(tiny_data, tmp_path, run_name="cut", max_steps=500)
    with pytest.raises(KeyboardInterrupt):
        launch_training(nproc=2, config=config, grace_s=30, env={**THREADS, "PYTHONUNBUFFERED": "1"})
    process = started[0]
    assert process.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # no process of the group is left
    assert (tmp_path / "cut" / "latest.pt").is_file()


def test_live_curves_show_progress_and_draw_once_the_log_exists(tmp_path, monkeypatch):
    import json

    from ifrvp_core.workbook import training_views

    drawn = []
    monkeypatch.setattr(training_views, "training_curves_figure", lambda run_dir: f"figure of {len(read_log(run_dir))} records")
    # a machine booted 10 s ago: the monotonic clock's origin must not hold back the first drawing
    clock = iter(10.0 + 0.1 * i for i in range(10_000))
    monkeypatch.setattr(training_views.time, "monotonic", lambda: next(clock))
    live = training_views.LiveCurves(tmp_path, interval_s=3600)
    live.handle = type("Handle", (), {"update": lambda self, figure: drawn.append(figure)})()
    live("IFRNet_T on synthetic (8 train / 4 val samples), 2 process(es) on cpu, batch 2/process, 4 steps/epoch, 12 steps")
    assert live.bar.total == 12 and live.bar.n == 0 and drawn == []  # no log yet: nothing drawn, the next call tries again
    (tmp_path / "log.jsonl").write_text("".join(json.dumps({"kind": "train", "iteration": i, "loss": 0.5}) + "\n" for i in (1, 2, 3, 4, 5)))
    live()  # a tick: the bar follows log.jsonl, and the first curves appear at once
    assert live.bar.n == 5 and drawn == ["figure of 5 records"]
    live("train:  50%|#####     | 6/12 [00:03<00:03,  2.0it/s, loss=0.4]")
    assert live.bar.n == 6 and len(drawn) == 1  # the next redraw waits for interval_s
    live.close()
    assert drawn[-1] == "figure of 5 records" and len(drawn) == 2
