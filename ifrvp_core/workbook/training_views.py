"""Notebook 03 (training with DDP): the run's curves, live while it trains, and its results."""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
from IPython.display import display
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from ifrvp_core.checkpoint import load_file
from ifrvp_core.launch import read_log
from ifrvp_core.workbook.verdicts import verdict_cell


def training_curves_figure(run_dir):
    """Loss (and its terms), learning rate, throughput and validation PSNR/SSIM of a run folder.

    The validation panel draws copy-last and DIS extrapolation on the same samples as dotted lines.
    """
    train, val = read_log(run_dir, "train"), read_log(run_dir, "val")
    fig = Figure(figsize=(13, 3.2), constrained_layout=True)
    ax_loss, ax_lr, ax_speed, ax_val = fig.subplots(1, 4)
    if train:
        steps = [r["iteration"] for r in train]
        ax_loss.plot(steps, [r["loss"] for r in train], label="total", color="k")
        for term in train[-1].get("terms", {}):
            ax_loss.plot(steps, [r.get("terms", {}).get(term, np.nan) for r in train], label=term, linewidth=0.8)
        ax_loss.set_yscale("log")
        ax_loss.legend(fontsize=7)
        ax_lr.plot(steps, [r["lr"] for r in train])
        ax_speed.plot(steps, [r["samples_per_s"] for r in train], label="samples/s")
        ax_speed.plot(steps, [100 * r["data_wait_share"] for r in train], label="% waiting for data")
        ax_speed.legend(fontsize=7)
    if val:
        ax_val.plot([r["iteration"] for r in val], [r["psnr"] for r in val], "o-", label="val PSNR (dB)")
        # the baselines on the same validation samples: a model under them has not learned to predict
        for name, colour in (("copy_last", "tab:red"), ("dis_extrapolation", "tab:green"), ("prior_only", "tab:purple")):
            if f"{name}_psnr" in val[-1]:
                ax_val.axhline(val[-1][f"{name}_psnr"], color=colour, linestyle=":", linewidth=1.2, label=f"{name} PSNR")
        twin = ax_val.twinx()
        twin.plot([r["iteration"] for r in val], [r["ssim"] for r in val], "s--", color="tab:orange", label="val SSIM")
        twin.set_ylabel("SSIM")
        ax_val.legend(loc="lower right", fontsize=7)
    for ax, title in ((ax_loss, "training loss"), (ax_lr, "learning rate"), (ax_speed, "throughput"), (ax_val, "validation t+1")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
    return fig


def validation_baseline_rows(summary: dict) -> list[dict]:
    """The model's final validation t+1 scores next to the baselines on the same samples (from summary.json)."""
    final = summary.get("final") or {}
    rows = [{"method": "model", "PSNR t+1": final.get("psnr"), "SSIM t+1": final.get("ssim"), "model beats it": ""}]
    for name, values in (summary.get("baselines") or {}).items():
        beats = (summary.get("beats_baselines") or {}).get(name, {})
        rows.append({"method": name, "PSNR t+1": values["psnr"], "SSIM t+1": values["ssim"], "model beats it": verdict_cell(beats)})
    return rows


class LiveCurves:
    """Live view of a training run in the cell that launched it: a progress bar and the curves.

    Pass it as both `on_line` and `on_tick` of `launch_training`. The bar (`tqdm.auto`: a widget
    bar in JupyterLab, a text bar elsewhere) follows the iterations in `log.jsonl` and the
    trainer's own progress lines; its total comes from the trainer's first line ("..., N steps").
    `training_curves_figure` is redrawn in one output area as soon as the first log records exist,
    then at most every `interval_s`. Call `close()` (or `live(force=True)`) when the run ends.
    """

    _TOTAL = re.compile(r", (\d+) steps$")
    _TQDM = re.compile(r"^train:.*?(\d+)/(\d+)")

    def __init__(self, run_dir, interval_s: float = 15.0, total: int | None = None, progress: bool = True):
        # None, not 0.0: time.monotonic() counts from an arbitrary origin (boot on Linux), so
        # "0.0 seconds ago" would hold back the first drawing for up to interval_s after boot
        self.run_dir, self.interval_s, self.last = Path(run_dir), interval_s, None
        self.iteration, self.last_progress = 0, None
        self.bar = tqdm(total=total or None, desc="training", unit="step", disable=not progress, dynamic_ncols=True)
        self.handle = display({"text/plain": "waiting for the first log records ..."}, raw=True, display_id=True)

    def _progress(self, line: str | None) -> None:
        if line:
            found = self._TOTAL.search(line) or self._TQDM.search(line)
            if found and not self.bar.total:
                self.bar.reset(total=int(found.groups()[-1]))  # reset() also resizes the widget bar
            found = self._TQDM.search(line)
            if found:
                self.iteration = max(self.iteration, int(found.group(1)))
        if line is None or self.last_progress is None or time.monotonic() - self.last_progress >= 1.0:
            self.last_progress = time.monotonic()
            records = read_log(self.run_dir, kind="train")
            if records:
                self.iteration = max(self.iteration, int(records[-1]["iteration"]))
                self.bar.set_postfix(loss=f"{records[-1]['loss']:.4f}", refresh=False)
        if self.iteration != self.bar.n:
            self.bar.n = self.iteration
            self.bar.refresh()

    def __call__(self, line: str | None = None, force: bool = False) -> None:
        self._progress(line)
        if not force and self.last is not None and time.monotonic() - self.last < self.interval_s:
            return
        if not (self.run_dir / "log.jsonl").is_file():
            return  # nothing to draw yet: try again at the next line or tick
        self.last = time.monotonic()
        self.handle.update(training_curves_figure(self.run_dir))

    def close(self) -> None:
        """Draw the final curves and finish the bar."""
        self(force=True)
        self.bar.close()


def checkpoint_listing(run_dir) -> list[dict]:
    """The files of a run folder, with the iteration and metrics stored in each checkpoint."""
    rows = []
    for path in sorted(Path(run_dir).iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        row = {"file": path.name, "size (KB)": path.stat().st_size / 1024}
        if path.suffix == ".pt":
            state = load_file(path)
            row["iteration"] = state.get("iteration")
            row.update({f"val {k}": v for k, v in (state.get("metrics") or {}).items() if k in ("psnr", "ssim")})
        rows.append(row)
    return rows


__all__ = ["LiveCurves", "checkpoint_listing", "training_curves_figure", "validation_baseline_rows"]
