"""What a training run writes about itself, and how it is read back.

A run folder holds (`RUN_FILES`) `config.json`, `log.jsonl` (one JSON record per line: kind "train", "val",
"bad_sample", "bad_step", "stopped"), `log.csv` (the "train" records, flat), `tensorboard/`
(when tensorboard is installed) and `summary.json`. Rank 0 writes; the other ranks' `RunLog`
writes nothing. The summary also goes to stdout as one `SUMMARY_PREFIX` line, which
`launch_training` reads back from the workers' output (`parse_summary_line`).
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from ifrvp_core.checkpoint import write_text_atomic
from ifrvp_core.motion_prior import dis_call_count
from ifrvp_core.results import beats_baseline
from ifrvp_core.train.config import existing_run_files

SUMMARY_PREFIX = "IFRVP_SUMMARY "  # the stdout line that carries summary.json to launch_training


def json_number(value: float):
    """A float for JSON: non-finite values as the strings "nan", "inf", "-inf" (strict JSON has none)."""
    value = float(value)
    return value if math.isfinite(value) else str(value)


# said once at the start of training when the optional tensorboard package is missing
TENSORBOARD_OFF = ("TensorBoard logging is off: the tensorboard package is not installed "
                   "(pip install tensorboard, or pip install -e '.[tensorboard]'); log.jsonl and log.csv hold the same curves")


def open_tensorboard(run_dir: Path):
    """A SummaryWriter when tensorboard is installed, else None (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # optional: needs the tensorboard package
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def clear_run(run_dir) -> list[str]:
    """Delete the files of a previous run (`RUN_FILES`) from `run_dir` (anything else stays); returns their names."""
    removed = existing_run_files(run_dir)
    for name in removed:
        path = Path(run_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return removed


def csv_columns(path) -> list[str]:
    """The header of a CSV file ([] for an empty file)."""
    with open(path, newline="") as handle:
        return next(csv.reader(handle), [])


class RunLog:
    """The text log (stdout, around the progress bar) and the records of one run (rank 0 only).

    `history` keeps every record written in this process; `progress` is the tqdm bar while the
    training loop runs (text lines are written through it so they are not glued to the bar).
    """

    def __init__(self, run_dir: Path, main: bool):
        self.run_dir, self.main = Path(run_dir), main
        self.history: list[dict] = []
        self.tensorboard = None
        self.progress = None

    def start(self, config: dict) -> None:
        """Create the run folder, write `config.json`, open TensorBoard."""
        if not self.main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.run_dir / "config.json", json.dumps(config, indent=1))
        self.tensorboard = open_tensorboard(self.run_dir)
        if self.tensorboard is None:
            self.text(TENSORBOARD_OFF)

    def open_progress(self, total: int, initial: int) -> None:
        """The training progress bar (on stderr; none off rank 0), through which text lines are written from now on."""
        # without a terminal (logs, notebooks, papermill) a bar line every 30 s is plenty
        self.progress = tqdm(total=total, initial=initial, disable=not self.main, desc="train",
                             mininterval=1.0 if sys.stderr.isatty() else 30.0, file=sys.stderr)

    def text(self, text: str) -> None:
        if not self.main:
            return
        progress = self.progress
        if progress is not None and not progress.disable:
            progress.write(text, file=sys.stdout)  # clears the bar first, so the line is not glued to it
            sys.stdout.flush()
        else:
            print(text, flush=True)

    def write(self, record: dict) -> None:
        """Append `record` to log.jsonl (and TensorBoard; "train" records to log.csv too)."""
        if not self.main:
            return
        self.history.append(record)
        with open(self.run_dir / "log.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("iteration", "epoch"):
                    self.tensorboard.add_scalar(f"{record['kind']}/{key}", value, record["iteration"])
            for key, value in record.get("terms", {}).items():
                self.tensorboard.add_scalar(f"loss/{key}", value, record["iteration"])
        if record["kind"] == "train":
            self._write_csv_row(record)

    def _write_csv_row(self, record: dict) -> None:
        """One "train" record as a row of log.csv, under the file's header (written with the first row)."""
        csv_path = self.run_dir / "log.csv"
        flat = {k: v for k, v in record.items() if not isinstance(v, dict)} | record.get("terms", {})
        new = not csv_path.exists() or csv_path.stat().st_size == 0
        # A resumed run keeps its file's columns (one written by an earlier version may lack newer keys:
        # those stay in log.jsonl only), so every row lines up with the header.
        columns = list(flat) if new else csv_columns(csv_path) or list(flat)
        with open(csv_path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="", extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(flat)

    def recipe(self, config, teacher_flow: str, losses) -> None:
        """The motion prior, teacher flow and distillation settings; a warning when distillation has no teacher.

        config: the run's `TrainConfig`; teacher_flow: the training set's `teacher_source`; losses: its `LossConfig`.
        """
        options = config.model_options()
        shift = "; prior shift input" if options.get("prior_shift_input") else ""
        shift += "; prior shift gate" if options.get("prior_shift_gate") else ""
        self.text(f"motion prior: {config.resolved_motion_prior()}{shift}; teacher flow: {teacher_flow}; "
                  f"distillation weight {losses.distillation}, beta {losses.distillation_beta}; "
                  f"lr {config.resolved_lr_start():g} -> {config.lr_end:g}")
        if teacher_flow == "none" and losses.distillation > 0:
            self.text("warning: no teacher flow, so the distillation term is off "
                      f"(--teacher_flow {config.teacher_flow}); use --teacher_flow auto or prepare it with data_prep teacher_flow")

    def validation(self, iteration: int, epoch: int, metrics: dict, baselines: dict | None) -> None:
        """The "val" record and its text line (the baselines' scores on the same samples after the model's)."""
        self.write({"kind": "val", "iteration": iteration, "epoch": epoch, **metrics})
        scores = "".join(f"; {name} {values['psnr']:.3f} / {values['ssim']:.4f}" for name, values in (baselines or {}).items())
        self.text(f"epoch {epoch} iteration {iteration}: val PSNR {metrics['psnr']:.3f} SSIM {metrics['ssim']:.4f}{scores}")

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()

    def write_summary(self, summary: dict) -> None:
        if self.main:
            write_text_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=1))


class StepTimer:
    """Samples/s, the share of the time spent waiting for the DataLoader and this process's DIS calls, since the last `reset`.

    A step's time is its wait for the batch (from `wait_started` to `batch_ready`) plus its work
    (from `batch_ready` to `step_done`); samples count every process (the batch is per process).
    `dis_calls` counts the DIS flows this process computed over the same spans (`dis_call_count`):
    fetching the batch (the dataset's prior without loader workers) and the step; what runs between
    a `step_done` and the next `wait_started` (validation, checkpoints) is not counted.
    """

    def __init__(self, world_size: int):
        self.world_size = world_size
        self.reset()
        self.wait_started()

    def reset(self) -> None:
        self.samples, self.time, self.wait, self.dis_calls = 0, 0.0, 0.0, 0

    def wait_started(self) -> None:
        self._wait_start = time.perf_counter()
        self._dis_start = dis_call_count()

    def batch_ready(self) -> None:
        self._waited = time.perf_counter() - self._wait_start
        self._step_start = time.perf_counter()

    def step_done(self, batch_size: int) -> None:
        step_time = time.perf_counter() - self._step_start
        self.samples += batch_size * self.world_size
        self.time += step_time + self._waited
        self.wait += self._waited
        self.dis_calls += dis_call_count() - self._dis_start

    def rates(self) -> dict:
        """{"samples_per_s", "data_wait_share"} over the steps since the last reset."""
        return {"samples_per_s": self.samples / max(self.time, 1e-9), "data_wait_share": self.wait / max(self.time, 1e-9)}


def beats_baselines(metrics: dict, baselines: dict | None) -> dict:
    """{baseline: {"psnr": bool, "ssim": bool}}: whether the model scores higher on the validation samples.

    metrics: the model's validation scores (`psnr`, `ssim`; empty when nothing was validated);
    baselines: {baseline: {"psnr", "ssim"}} on the same samples.
    """
    return {name: beats_baseline(metrics, values) for name, values in (baselines or {}).items() if "psnr" in metrics}


def run_summary(config, *, run_dir: Path, iterations: int, epochs: int, world_size: int, wall_time_s: float, final: dict,
                best_psnr: float, teacher_flow: str, baselines: dict | None, bad_input: dict) -> dict:
    """summary.json: the run, its final and best validation, the baselines and the bad-input counts.

    config: the run's `TrainConfig`; final: the last validation's metrics ({} without one);
    baselines: {baseline: {"psnr", "ssim"}} or None; bad_input: `BadInputGuard.summary_counts()`.
    """
    return {
        "run_dir": str(Path(run_dir).resolve()), "model_name": config.model_name, "dataset": config.dataset,
        "iterations": iterations, "epochs": epochs, "world_size": world_size,
        "wall_time_s": wall_time_s, "final": final, "best_psnr": best_psnr if math.isfinite(best_psnr) else None,
        "motion_prior": config.resolved_motion_prior(), "teacher_flow": teacher_flow, "protocol": config.protocol,
        "lr_start": config.resolved_lr_start(),
        "baselines": baselines or {}, "beats_baselines": beats_baselines(final, baselines), **bad_input,
    }


# Training that moves the validation PSNR less than this from the untrained twin (prior_only) has
# not learned anything that the validation can tell from noise.
PRIOR_ONLY_NOISE_DB = 0.1


def baseline_warnings(summary: dict) -> list[str]:
    """One warning line per baseline the final model does not beat in PSNR, and one when it ends
    within `PRIOR_ONLY_NOISE_DB` of its untrained twin (prior_only): training then added nothing."""
    lines = [
        f"warning: the model does not beat {name} on the validation samples "
        f"(PSNR {summary['final']['psnr']:.3f} vs {summary['baselines'][name]['psnr']:.3f}): not a video predictor yet"
        for name, beats in summary["beats_baselines"].items()
        if not beats["psnr"]
    ]
    prior = summary["baselines"].get("prior_only")
    if prior is not None and "psnr" in summary["final"]:
        gain = summary["final"]["psnr"] - prior["psnr"]
        if abs(gain) < PRIOR_ONLY_NOISE_DB:
            lines.append(f"warning: training added {gain:+.3f} dB PSNR over the untrained model (prior_only "
                         f"{prior['psnr']:.3f}) on the validation samples, within noise ({PRIOR_ONLY_NOISE_DB} dB): "
                         "the network has learned nothing beyond its motion prior")
    return lines


def print_summary(summary: dict) -> None:
    """The summary as one stdout line for `launch_training` (`parse_summary_line`)."""
    print(SUMMARY_PREFIX + json.dumps(summary), flush=True)


def parse_summary_line(line: str) -> dict | None:
    """The summary dict of a `print_summary` line; None for any other line."""
    if not line.startswith(SUMMARY_PREFIX):
        return None
    return json.loads(line[len(SUMMARY_PREFIX):])


def read_log(run_dir, kind: str | None = None) -> list[dict]:
    """The records of `<run_dir>/log.jsonl` (optionally only `kind` "train" or "val").

    Safe while training is running: a half-written last line is skipped.
    """
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # the line being written right now
        if kind is None or record.get("kind") == kind:
            records.append(record)
    return records
