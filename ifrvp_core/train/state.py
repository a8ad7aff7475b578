"""A run's checkpoints and the training state they hold beyond the weights: random-generator
states, library versions; written atomically by rank 0, never with non-finite weights.

The sample order depends only on (seed, epoch) and the generators are saved with every checkpoint,
so a run resumed from `latest.pt` continues with exactly the batches and random draws an
uninterrupted run would have seen.
"""
from __future__ import annotations

import platform
import random
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ifrvp_core.checkpoint import load_checkpoint, load_file, model_checkpoint, save_atomic
from ifrvp_core.train.distributed import Dist
from ifrvp_core.train.runlog import RunLog


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python's `random` (the trainer does this before building anything)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def rng_state() -> dict:
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "python": list(random.getstate()[1]) + [random.getstate()[0], random.getstate()[2]],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state[0], numpy_state[1].numpy().astype(np.uint32), *numpy_state[2:]))
    python = state["python"]
    random.setstate((python[-2], tuple(python[:-2]), python[-1]))


def library_versions() -> dict:
    # imported here: torchvision takes 1.3 s to import, and training needs it only for this record
    import torchvision

    return {"python": platform.python_version(), "torch": str(torch.__version__), "torchvision": str(torchvision.__version__), "numpy": str(np.__version__)}


def training_checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, iteration: int, epoch: int, total_steps: int,
                        best_psnr: float, config: dict, metrics: dict | None, robustness: dict) -> dict:
    """The project checkpoint of a training run: weights plus everything an exact resume needs (docs/architecture.md)."""
    return model_checkpoint(
        model,
        optimizer=optimizer.state_dict(),
        scheduler={"kind": "cosine", "iteration": iteration, "total_steps": total_steps},
        epoch=epoch,
        iteration=iteration,
        best_psnr=best_psnr,
        rng=rng_state(),
        config=config,
        versions=library_versions(),
        metrics=metrics or {},
        robustness=robustness,
    )


def nonfinite_weights(model: torch.nn.Module) -> list[str]:
    """Names of the model's floating-point parameters and buffers holding NaN or inf."""
    return [name for name, value in model.state_dict().items() if value.is_floating_point() and not bool(torch.isfinite(value).all())]


class RunCheckpoints:
    """`latest.pt` and `best.pt` of one run folder: which one to resume from, loading, safe writing.

    `last_latest_iteration` is the iteration of the last latest.pt written (or resumed from) by
    this process, None before the first.
    """

    def __init__(self, run_dir: Path, env: Dist, log: RunLog):
        self.run_dir, self.env, self.log = Path(run_dir), env, log
        self.last_latest_iteration: int | None = None

    @property
    def latest(self) -> Path:
        return self.run_dir / "latest.pt"

    def resume_source(self, config) -> str | None:
        """With `--resume auto`, the run folder's latest.pt when it exists; `--resume PATH` that checkpoint;
        else `--resume_path` (None: a fresh start)."""
        if config.resume == "auto":
            return str(self.latest) if self.latest.is_file() else config.resume_path
        return config.resume or config.resume_path

    def load(self, path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict | None:
        """Load the weights of `path` into `model`; for a training checkpoint also the optimizer and the RNG states.

        Returns:
            the training checkpoint dict (iteration, epoch, best_psnr, robustness, ...), or None
            when `path` holds weights only (e.g. an official IFRNet checkpoint).
        Raises:
            CheckpointError: a missing or unreadable file, or weights that do not fit (naming the file).
        """
        state = load_file(path)
        load_checkpoint(model, state, source=path)
        if not (isinstance(state, dict) and state.get("optimizer") is not None):
            return None
        optimizer.load_state_dict(state["optimizer"])
        if Path(path).resolve() == self.latest.resolve():
            self.last_latest_iteration = int(state["iteration"])
        if state.get("rng"):
            set_rng_state(state["rng"])
        return state

    def save(self, name: str, model: torch.nn.Module, make_checkpoint: Callable[[], dict], iteration: int) -> bool:
        """Write `make_checkpoint()` to `name` atomically (rank 0) unless `model` has non-finite weights (then False)."""
        if self.env.main:
            broken = nonfinite_weights(model)
            if broken:
                self.log.text(f"warning: not writing {self.run_dir / name} at iteration {iteration}: non-finite weights in "
                              f"{', '.join(broken[:5])}{' ...' if len(broken) > 5 else ''}")
                return False
            save_atomic(make_checkpoint(), self.run_dir / name)
        if name == "latest.pt":
            self.last_latest_iteration = iteration
        return True
