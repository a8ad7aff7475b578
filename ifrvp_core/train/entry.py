"""The training process's entry point: `ifrvp-train`, `ifrvp train`, `python -m ifrvp_core.train`
and torchrun's `-m ifrvp_core.train` all run `main`."""
from __future__ import annotations

import os
import sys
import traceback

from ifrvp_core.train.config import ConfigError, TrainConfig, existing_run_files

# torch, the data and the trainer are imported in `main` after the flags are parsed: importing
# them takes seconds, and `--help` or a bad value must answer at once.


def expected_errors() -> tuple:
    """The errors whose message says it all: printed without a traceback."""
    from ifrvp_core.checkpoint import CheckpointError  # heavy (torch): see the note above
    from ifrvp_core.data import DataError  # heavy (torch)
    from ifrvp_core.train.guard import TrainingAborted  # heavy (torch)

    return (CheckpointError, ValueError, FileNotFoundError, TrainingAborted, DataError)


def main(argv=None) -> int:
    """Train; returns the exit code: 0 done, 1 failed (on any rank), 2 a bad flag or config value,
    128 + signal when stopped by SIGTERM/SIGINT.

    A failing rank prints its error and exits non-zero at once, so torchrun tears the job down
    instead of leaving the other ranks blocked in a collective (they would otherwise time out
    after `--dist_timeout_min`). Under torchrun the process ends with `os._exit` after an orderly
    teardown: interpreter finalisation with live gloo/DDP objects can abort (SIGABRT) a rank that
    finished its work, which would turn a good run into a failed job.
    """
    try:
        config = TrainConfig.from_args(argv)
        # one process: refuse a run folder in use before the seconds of imports (under torchrun the
        # trainer decides on rank 0 and tells every rank)
        refusal = None if int(os.environ.get("WORLD_SIZE", "1")) > 1 else config.run_folder_refusal(
            existing_run_files(config.run_dir))
        if refusal is not None:
            raise ConfigError(refusal)
    except ConfigError as error:
        print(f"ifrvp train: error: {error}", file=sys.stderr, flush=True)
        return 2
    from ifrvp_core.train.distributed import end_process, setup_distributed  # heavy (torch): see the note above
    from ifrvp_core.train.runlog import print_summary  # heavy (torch)
    from ifrvp_core.train.trainer import Trainer  # heavy (torch)

    env = setup_distributed(config)
    failed = False
    try:
        trainer = Trainer(config, env)
        summary = trainer.run()
        if "stopped_by_signal" in summary:
            code = 128 + int(summary["stopped_by_signal"])
        else:
            if env.main:
                print_summary(summary)
            code = 0
        del trainer
    except Exception as error:  # noqa: BLE001 - any failure must end this rank with a clear message
        print(f"[rank {env.rank}] training failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        if not isinstance(error, expected_errors()):
            traceback.print_exc()
        code, failed = 1, True
    return end_process(env, code, failed)
