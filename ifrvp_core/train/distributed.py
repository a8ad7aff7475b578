"""One process of a training job: its rank and device, the collectives the trainer needs, a stop
on SIGTERM/SIGINT that all ranks agree on, and the teardown at the end.

torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; backend nccl with CUDA, gloo otherwise; only rank 0
writes (`Dist.main`). Without torchrun the process is rank 0 of 1 and nothing is initialised.
"""
from __future__ import annotations

import gc
import os
import signal
import sys
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(config) -> Dist:
    """This process's `Dist` from torchrun's environment; joins the process group when there are several.

    config: a `TrainConfig` (its `dist_timeout_min` bounds every collective).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size > 1:
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo", timeout=timedelta(minutes=config.dist_timeout_min)
        )
    return Dist(rank, world_size, local_rank, device)


def all_reduce_sum(values: torch.Tensor, env: Dist) -> torch.Tensor:
    if env.world_size > 1:
        values = values.clone()
        dist.all_reduce(values)
    return values


def wrap_ddp(model: torch.nn.Module, env: Dist) -> torch.nn.Module:
    """`model` in DistributedDataParallel when there are several processes, else `model` itself."""
    if env.world_size == 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[env.local_rank] if env.device.type == "cuda" else None)


def end_process(env: Dist, code: int, failed: bool) -> int:
    """Under torchrun: tear down together and end the process with `code` (`os._exit`); else return `code`.

    Interpreter finalisation with live gloo/DDP objects can abort (SIGABRT) a rank that finished
    its work, which would turn a good run into a failed job; a failed rank skips the barrier (the
    others may never reach it) and exits at once, so torchrun stops the job.
    """
    if env.world_size > 1 and dist.is_initialized():
        if not failed:
            gc.collect()  # free DDP's reducer and pending work while the interpreter is fully alive
            dist.barrier()  # rank 0 may still be writing checkpoints; tear down together
            dist.destroy_process_group()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


class StopFlag:
    """SIGTERM/SIGINT ask the loop to save `latest` after the current step and exit (code 128 + signal).

    The flag is combined across ranks every step (`should_stop`), so all ranks leave the loop after
    the same iteration even when the signal reaches them at slightly different times.
    """

    def __init__(self):
        self.signal = None
        self._previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (e.g. called from a notebook worker thread)
                pass

    def _handle(self, signum, frame):
        self.signal = signum

    def should_stop(self, env: Dist) -> bool:
        if env.world_size == 1:
            return self.signal is not None
        flag = torch.tensor([0 if self.signal is None else int(self.signal)], device=env.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self.signal = int(flag.item()) or None
        return self.signal is not None

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
