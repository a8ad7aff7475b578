"""Start training from a notebook cell: the same `ifrvp_core.train` as the command line, in fresh processes.

    from ifrvp_core.launch import launch_training, read_log
    result = launch_training(nproc=2, model_name="IFRNet_S", dataset="synthetic", max_steps=200)
    result.summary["final"]["psnr"], result.run_dir
    curves = read_log(result.run_dir)           # list of dicts, also while a run is going

Nothing from the notebook is pickled into the workers: the config is written to a JSON file in a
temporary folder and the workers are `python -m torch.distributed.run --standalone
--nproc_per_node=N -m ifrvp_core.train --config that.json` (one process runs `python -m
ifrvp_core.train` directly). Their output is printed line by line as it arrives (tqdm's carriage
returns are collapsed into lines, so it reads well under papermill too). Interrupting the cell sends
SIGTERM to the whole process group (the trainer saves `latest.pt` and exits), then SIGKILL after a
grace period.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import ifrvp_core
from ifrvp_core.train.config import TrainConfig
from ifrvp_core.train.runlog import parse_summary_line, read_log


class TrainingFailed(RuntimeError):
    """The training subprocess exited non-zero; the message holds the tail of its output."""

    def __init__(self, message: str, returncode: int, log_tail: str):
        super().__init__(message)
        self.returncode, self.log_tail = returncode, log_tail


@dataclass
class LaunchResult:
    run_dir: Path
    summary: dict
    log_path: Path  # the run's log.jsonl
    returncode: int
    output: list[str] = field(default_factory=list, repr=False)  # every printed line


def build_command(nproc: int, config_file: Path, extra_args: list[str] | None = None) -> list[str]:
    """The argv that `launch_training` runs."""
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    train = ["-m", "ifrvp_core.train", "--config", str(config_file), *(extra_args or [])]
    if nproc == 1:
        return [sys.executable, *train]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *train]


def _config_dict(config, overrides: dict) -> dict:
    if config is None:
        values = {}
    elif isinstance(config, TrainConfig):
        values = config.to_dict()
    elif isinstance(config, dict):
        values = dict(config)
    else:
        raise TypeError(f"config must be a dict, a TrainConfig or None, got {type(config).__name__}")
    values.update(overrides)
    unknown = TrainConfig.unknown_keys(values)
    if unknown:
        raise ValueError(f"unknown training option(s) {unknown}; see ifrvp_core.train.TrainConfig")
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}


def _stop_group(process: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the whole process group (torchrun and its workers), SIGKILL after `grace_s`."""
    for signum, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def launch_training(
    nproc: int = 1,
    config: dict | TrainConfig | None = None,
    *,
    grace_s: float = 30.0,
    echo: bool = True,
    tail_lines: int = 40,
    env: dict | None = None,
    cwd=None,
    on_line=None,
    on_tick=None,
    tick_s: float = 2.0,
    **overrides,
) -> LaunchResult:
    """Run `ifrvp_core.train` with `nproc` processes and wait for it.

    Args:
        nproc: processes on this machine (torchrun `--standalone`; 1 runs without torchrun).
        config: TrainConfig fields as a dict or a TrainConfig; `overrides` (same keys) win.
        grace_s: seconds between SIGTERM and SIGKILL when the cell is interrupted.
        echo: print the training output live, one line at a time.
        tail_lines: lines of output quoted by `TrainingFailed`.
        env: extra environment variables for the workers (e.g. {"OMP_NUM_THREADS": "2"}).
        on_line: called with every output line as it arrives (e.g. to redraw live curves).
        on_tick: called with no argument whenever `tick_s` seconds pass without output (the
            trainer prints a progress line only every 30 s without a terminal), so live curves
            and progress bars keep moving between lines.

    Returns:
        LaunchResult with `run_dir`, the trainer's `summary` dict (final/best metrics, steps, wall
        time), `log_path` (log.jsonl) and `returncode`.

    Raises:
        ConfigError (a ValueError): a bad option value, before any process starts (without `cwd`).
        TrainingFailed: the job exited non-zero (its output tail is in the message).
        KeyboardInterrupt: re-raised after the job was stopped (it saves `latest.pt` first).
    """
    values = _config_dict(config, overrides)
    checked = TrainConfig(**values)
    if cwd is None:  # a bad value fails here, before any process starts (with `cwd` relative paths are the workers' to check)
        checked.check()
    run_dir = checked.run_dir
    if cwd is not None and not run_dir.is_absolute():
        run_dir = Path(cwd) / run_dir
    with tempfile.TemporaryDirectory(prefix="ifrvp_launch_") as folder:
        config_file = Path(folder) / "train_config.json"
        config_file.write_text(json.dumps(values, indent=1))
        command = build_command(nproc, config_file)
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=worker_environment(nproc, env), cwd=cwd,
            start_new_session=True,  # its own process group: one killpg reaches torchrun and every worker
        )
        output, summary = _follow_output(process, grace_s, echo, on_line, on_tick, tick_s)
    if process.returncode != 0:
        raise _failure(command, process.returncode, output, tail_lines)
    if summary.get("run_dir"):
        run_dir = Path(summary["run_dir"])
    return LaunchResult(run_dir=run_dir, summary=summary, log_path=run_dir / "log.jsonl", returncode=process.returncode, output=output)


def worker_environment(nproc: int, extra: dict | None = None) -> dict:
    """This process's environment for the workers: unbuffered output, shared cores, this `ifrvp_core` first on PYTHONPATH."""
    process_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if nproc > 1 and "OMP_NUM_THREADS" not in process_env:  # share the cores instead of oversubscribing them
        process_env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    process_env.update(extra or {})
    # the workers must import the same ifrvp_core as this notebook, installed or not
    package_parent = str(Path(ifrvp_core.__file__).resolve().parent.parent)
    process_env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, process_env.get("PYTHONPATH")) if p)
    return process_env


def _follow_output(process: subprocess.Popen, grace_s: float, echo: bool, on_line, on_tick, tick_s: float) -> tuple[list[str], dict]:
    """Pass the job's output on line by line until it exits: (every line but the summary line, the summary or {}).

    Whatever interrupts this (the notebook's stop button, an error in a callback) stops the whole job first.
    """
    output: list[str] = []
    summary: dict = {}
    try:
        for line in output_lines(process.stdout, tick_s=tick_s if on_tick is not None else None):
            if line is None:
                on_tick()
                continue
            parsed = parse_summary_line(line)
            if parsed is not None:
                summary = parsed
                continue
            output.append(line)
            if echo:
                print(line, flush=True)
            if on_line is not None:
                on_line(line)
        process.wait()
    except BaseException:  # KeyboardInterrupt from the notebook, or anything else: never leave workers behind
        _stop_group(process, grace_s)
        raise
    finally:
        process.stdout.close()
    return output, summary


def _failure(command: list[str], returncode: int, output: list[str], tail_lines: int) -> TrainingFailed:
    text = "\n".join(deque(output, maxlen=tail_lines))
    # the ranks' own error lines first: torchrun's report at the end of the tail can bury them
    errors = list(dict.fromkeys(line for line in output if "training failed:" in line or "ifrvp train: error:" in line))[:4]
    cause = ("\n".join(errors) + "\n") if errors else ""
    return TrainingFailed(
        f"training exited with code {returncode} ({' '.join(command[1:4])} ...)\n{cause}last output:\n{text}", returncode, text
    )


def output_lines(stream, tick_s: float | None = None):
    """Decoded lines from a byte stream, splitting on \\n and on tqdm's \\r (empty pieces dropped).

    With `tick_s`, None is yielded whenever that many seconds pass without new output (POSIX
    pipes only: select() on the stream's descriptor).
    """
    buffer = b""
    if tick_s is not None and (os.name == "nt" or not hasattr(stream, "fileno")):
        tick_s = None
    while True:
        if tick_s is not None:
            if not select.select([stream], [], [], tick_s)[0]:
                yield None
                continue
            chunk = os.read(stream.fileno(), 65536)  # unbuffered: nothing can wait in a buffer select() cannot see
        else:
            chunk = stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096)
        if not chunk:
            break
        buffer += chunk
        *pieces, buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        for piece in pieces:
            text = piece.decode("utf-8", "replace").rstrip()
            if text:
                yield text
    text = buffer.decode("utf-8", "replace").rstrip()
    if text:
        yield text


__all__ = ["LaunchResult", "TrainingFailed", "build_command", "launch_training", "output_lines", "read_log", "worker_environment"]
