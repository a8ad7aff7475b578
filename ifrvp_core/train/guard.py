"""Bad inputs in long runs: the samples the datasets replaced and the non-finite steps skipped.

`BadInputGuard` counts both over all ranks, logs each bad file once and each skipped step, keeps
its counts in the checkpoints (`state_dict`, restored on resume), and stops the run with
`TrainingAborted` past `--max_bad_samples` distinct bad files or `--max_bad_steps` non-finite
steps in a row. Skipping itself happens elsewhere: the dataset replaces an unreadable sample
(`--on_bad_sample skip`) and `Trainer.train_step` skips the optimiser step on every rank together.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from ifrvp_core.train.distributed import Dist, all_reduce_sum
from ifrvp_core.train.runlog import RunLog, json_number


class TrainingAborted(RuntimeError):
    """The run hit a robustness limit (`max_bad_samples`, `max_bad_steps`); the message says which and why."""


class BadInputGuard:
    """Counters, global over ranks, kept in checkpoints: bad file -> iteration first seen, samples
    replaced, steps skipped (all, and the current run of consecutive ones)."""

    def __init__(self, max_bad_samples: int, max_bad_steps: int, env: Dist, log: RunLog):
        self.max_bad_samples, self.max_bad_steps = max_bad_samples, max_bad_steps
        self.env, self.log = env, log
        self.bad_files: dict[str, int] = {}
        self.bad_samples, self.bad_steps, self.bad_steps_in_row = 0, 0, 0

    # ------------------------------------------------------------------ checkpoints and logs
    def state_dict(self) -> dict:
        """The checkpoint's `robustness` entry."""
        return {"bad_files": dict(self.bad_files), "bad_samples": self.bad_samples, "bad_steps": self.bad_steps}

    def load_state_dict(self, robustness: dict | None) -> None:
        """Restore the counts of a checkpoint's `robustness` entry (absent in older checkpoints: zeros)."""
        robustness = robustness or {}
        self.bad_files = {str(k): int(v) for k, v in (robustness.get("bad_files") or {}).items()}
        self.bad_samples, self.bad_steps = int(robustness.get("bad_samples", 0)), int(robustness.get("bad_steps", 0))

    def counts(self) -> dict:
        """The counts a "train" record and summary.json carry (`bad_files`: how many)."""
        return {"bad_samples": self.bad_samples, "bad_files": len(self.bad_files), "bad_steps": self.bad_steps}

    def summary_counts(self) -> dict:
        """The counts summary.json carries (`bad_files`: the sorted file names)."""
        return {"bad_samples": self.bad_samples, "bad_files": sorted(self.bad_files), "bad_steps": self.bad_steps}

    def report(self) -> str | None:
        """The end-of-run line about replaced samples and skipped steps; None when there were none."""
        if not (self.bad_files or self.bad_steps):
            return None
        return (f"robustness: {self.bad_samples} sample(s) replaced ({len(self.bad_files)} bad file(s)), "
                f"{self.bad_steps} non-finite step(s) skipped; see kind 'bad_sample' / 'bad_step' in log.jsonl")

    # ------------------------------------------------------------------ per step
    def note_bad_samples(self, batch: dict, iteration: int, epoch: int) -> None:
        """Count and log (once per file) the samples this step's batches replaced, over all ranks.

        `iteration` is the number of steps done before this batch's step.

        Raises:
            TrainingAborted: more than `max_bad_samples` distinct bad files.
        """
        files = self._skipped_files_of_all_ranks(batch)
        if not files:
            return
        self.bad_samples += len(files)
        for name in files:
            if name not in self.bad_files:
                self.bad_files[name] = iteration + 1
                self.log.text(f"warning: skipped a bad sample at iteration {iteration + 1}: {name} "
                              f"(bad file {len(self.bad_files)}, at most {self.max_bad_samples}); "
                              "replaced by the next sample of this epoch's order")
                self.log.write({"kind": "bad_sample", "iteration": iteration + 1, "epoch": epoch, "file": name})
        if len(self.bad_files) > self.max_bad_samples:
            listed = "\n  ".join(sorted(self.bad_files))
            self.log.write({"kind": "stopped", "iteration": iteration, "epoch": epoch, "reason": "max_bad_samples",
                            "bad_files": sorted(self.bad_files), "bad_samples": self.bad_samples})
            raise TrainingAborted(f"{len(self.bad_files)} bad files (more than --max_bad_samples {self.max_bad_samples}); "
                                  f"fix or remove them, or raise the limit:\n  {listed}")

    def _skipped_files_of_all_ranks(self, batch: dict) -> list[str]:
        local = [name for names in batch.get("skipped_files", []) for name in names]
        if self.env.world_size == 1:
            return local
        if all_reduce_sum(torch.tensor([len(local)], device=self.env.device), self.env).item() == 0:
            return []
        gathered: list = [None] * self.env.world_size
        dist.all_gather_object(gathered, local)
        return [name for part in gathered for name in part]

    def note_step(self, ok: bool, terms: dict, iteration: int, epoch: int, latest: tuple[Path, int | None]) -> None:
        """After the step that made `iteration`: a good one ends a run of bad ones, a bad one is counted and logged.

        terms: the step's `loss` and `grad_norm`; latest: (latest.pt's path, the iteration it holds
        or None when this run wrote none), for the message that stops the run.

        Raises:
            TrainingAborted: `max_bad_steps` in a row; latest.pt keeps the last good state.
        """
        if ok:
            self.bad_steps_in_row = 0
            return
        self.bad_steps += 1
        self.bad_steps_in_row += 1
        loss, norm = float(terms["loss"]), float(terms["grad_norm"])
        self.log.text(f"warning: non-finite step at iteration {iteration} (loss {loss}, gradient norm {norm}): "
                      f"optimiser step skipped ({self.bad_steps_in_row} in a row, at most {self.max_bad_steps})")
        self.log.write({"kind": "bad_step", "iteration": iteration, "epoch": epoch, "loss": json_number(loss),
                        "grad_norm": json_number(norm), "in_a_row": self.bad_steps_in_row, "bad_steps": self.bad_steps})
        if self.bad_steps_in_row >= self.max_bad_steps:
            self._stop_after_bad_steps(loss, norm, iteration, epoch, latest)

    def _stop_after_bad_steps(self, loss: float, norm: float, iteration: int, epoch: int, latest: tuple[Path, int | None]) -> None:
        latest_path, latest_iteration = latest
        first = iteration - self.bad_steps_in_row + 1
        kept = (f"{latest_path} holds iteration {latest_iteration}, the last good state"
                if latest_iteration is not None else "no latest.pt was written by this run")
        self.log.write({"kind": "stopped", "iteration": iteration, "epoch": epoch, "reason": "max_bad_steps",
                        "bad_steps": self.bad_steps, "latest_iteration": latest_iteration})
        raise TrainingAborted(f"{self.bad_steps_in_row} non-finite steps in a row (iterations {first}..{iteration}, "
                              f"--max_bad_steps {self.max_bad_steps}; last loss {loss}, gradient norm {norm}); {kept}. "
                              "Try a lower --lr_start, --grad_clip 1 or --amp bf16/none, then --resume auto")
