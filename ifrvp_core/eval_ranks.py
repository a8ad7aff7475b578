"""The ranks of an evaluation under torchrun: who scores which samples, and how their scores meet.

`ifrvp evaluate` started by ``torchrun --nproc_per_node=R -m ifrvp_core.cli evaluate ...`` joins
a gloo process group (`join_torchrun`); `ifrvp_core.evaluate.evaluate` then scores every R-th
sample on each rank (`shard`: rank r takes samples r, r + R, r + 2R, ...) and gathers the
per-sample scores (`gather`), so every rank ends with the scores of the whole test set in sample
order, and only rank 0 writes files. Evaluation's collectives carry a few numbers per sample, so
gloo serves CPU and GPU nodes alike (no NCCL device binding to get wrong).

Without torchrun (``WORLD_SIZE`` unset or 1) nothing is initialised and the process is rank 0 of 1.
"""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["gather", "join_torchrun", "leave", "local_device", "rank_and_world", "shard", "synchronise", "torchrun_world_size"]

# Every collective of an evaluation waits at most this long for the slowest rank (a rank that is
# still loading data or scoring its last batch), then fails instead of hanging forever.
DEFAULT_TIMEOUT_MIN = 60


def torchrun_world_size() -> int:
    """The ``WORLD_SIZE`` torchrun set for this process (1 without torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be an integer (torchrun sets it), got {os.environ['WORLD_SIZE']!r}") from None


def join_torchrun(timeout_min: float = DEFAULT_TIMEOUT_MIN) -> tuple[int, int]:
    """(rank, world size) of this process; joins a gloo group when torchrun started several.

    Nothing happens without torchrun or when a group is already initialised (its rank is used).
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if torchrun_world_size() <= 1:
        return 0, 1
    dist.init_process_group("gloo", timeout=timedelta(minutes=timeout_min))
    return dist.get_rank(), dist.get_world_size()


def rank_and_world(distributed: bool | None = None) -> tuple[int, int]:
    """(rank, world size) an evaluation shards over.

    Args:
        distributed: None: the initialised process group's, (0, 1) without one; False: (0, 1)
            (this process scores everything, whatever the group); True: the group's, ValueError
            when none is initialised.
    """
    initialised = dist.is_available() and dist.is_initialized()
    if distributed is False or (distributed is None and not initialised):
        return 0, 1
    if not initialised:
        raise ValueError("distributed=True needs an initialised torch.distributed process group (start under torchrun)")
    return dist.get_rank(), dist.get_world_size()


def local_device(device, world_size: int) -> torch.device | None:
    """The device of this rank: with several ranks and CUDA, None/"auto"/"cuda" become
    ``cuda:LOCAL_RANK`` (one GPU per rank); anything else (and one rank) stays as given (None: the
    caller's default)."""
    if world_size > 1 and torch.cuda.is_available() and (device is None or str(device) in ("auto", "cuda")):
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return None if device is None else torch.device(device)


def shard(indices: list[int], rank: int, world_size: int) -> list[int]:
    """The samples rank `rank` scores: every `world_size`-th of `indices`, starting at its own rank
    (rank 0 always has the first one; ranks beyond the sample count have none)."""
    return list(indices[rank::world_size])


def gather(value, world_size: int) -> list:
    """[value of rank 0, value of rank 1, ...] on every rank (picklable values); [value] for one rank.

    Collective: with several ranks every rank must call it, in the same order.
    """
    if world_size == 1:
        return [value]
    gathered: list = [None] * world_size
    dist.all_gather_object(gathered, value)
    return gathered


def synchronise(world_size: int) -> None:
    """Wait for every rank (a barrier); nothing for one rank."""
    if world_size > 1:
        dist.barrier()


def leave(world_size: int) -> None:
    """Tear the group down together, after rank 0 has written its files (a barrier first)."""
    if world_size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
