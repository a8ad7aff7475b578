"""Loading batches: the per-epoch sample order, the resumable sampler, collate and the data loader.

Every dataset of `build_dataset` builds its own loader through one small interface,
`dataset.loader(batch_size, shuffle, num_workers, seed, rank, world_size)`, which returns an
`EpochLoader`: a DataLoader that knows how to start an epoch at a given batch
(`set_epoch(epoch, skip_batches)`) and how many batches each rank gets (`batches_per_epoch()`).
Map-style datasets (`WindowDataset`) get a `ResumableSampler`; WebDataset shards stream.
"""
from __future__ import annotations

import random

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler


def epoch_order(size: int, seed: int, epoch: int) -> list[int]:
    """The shuffled sample order of one epoch; it depends only on (seed, epoch).

    `ResumableSampler` draws its order from here, and `WindowDataset` replaces a bad sample by
    the next one in this order, so both agree without sharing any state.
    """
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()


def collate(samples: list[dict]) -> dict:
    """Stack tensors; keep names as a list. Samples of different sizes: a `ValueError` naming them."""
    batch = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        if isinstance(values[0], torch.Tensor):
            shapes = {tuple(value.shape) for value in values}
            if len(shapes) > 1:
                names = [sample.get("name", "?") for sample in samples]
                raise ValueError(f"samples {names} differ in {key!r} shape {sorted(shapes)}; use batch_size=1 for mixed frame sizes")
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    return batch


def seed_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: seed numpy and `random` in each worker from torch's worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class ResumableSampler(Sampler):
    """Deterministic per-epoch order shared by all ranks; each rank takes every world_size-th index.

    The order of epoch e depends only on (seed, epoch), so a resumed run sees exactly the samples
    an uninterrupted run would: `skip_batches` drops the first batches of the current epoch.
    With world_size 1 and batch 2b this yields the same samples per step as 2 ranks with batch b.
    `set_epoch` passes the epoch on to the dataset when it has one of its own (its random draws).
    """

    def __init__(self, dataset, batch_size: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.dataset = dataset
        self.size = len(dataset)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip_batches = 0, 0
        self.samples_per_rank = self.size // world_size
        if self.samples_per_rank < batch_size:
            raise ValueError(f"dataset of {self.size} samples is too small for {world_size} rank(s) x batch {batch_size}")

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, skip_batches
        if hasattr(self.dataset, "set_epoch"):  # a plain map-style dataset has no epoch of its own
            self.dataset.set_epoch(epoch)

    def batches_per_epoch(self) -> int:
        return self.samples_per_rank // self.batch_size

    def __iter__(self):
        if self.shuffle:
            order = epoch_order(self.size, self.seed, self.epoch)
        else:
            order = list(range(self.size))
        mine = order[: self.samples_per_rank * self.world_size][self.rank :: self.world_size]
        usable = self.batches_per_epoch() * self.batch_size
        return iter(mine[self.skip_batches * self.batch_size : usable])

    def __len__(self) -> int:
        return max(0, (self.batches_per_epoch() - self.skip_batches) * self.batch_size)


class EpochLoader(DataLoader):
    """A DataLoader with an epoch source: the sampler (map-style) or the stream (shards).

    `epochs` has `set_epoch(epoch, skip_batches)` and `batches_per_epoch()`.
    """

    def __init__(self, dataset, epochs, **options):
        super().__init__(dataset, **options)
        self.epochs = epochs

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Start `epoch` at batch `skip_batches` (an exact resume inside an epoch)."""
        self.epochs.set_epoch(epoch, skip_batches)

    def batches_per_epoch(self) -> int:
        """Batches per epoch and rank."""
        return self.epochs.batches_per_epoch()


def sampled_loader(dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int, rank: int, world_size: int) -> EpochLoader:
    """A seeded `EpochLoader` over a `ResumableSampler`: the loader of any map-style dataset."""
    sampler = ResumableSampler(dataset, batch_size, shuffle, seed, rank, world_size)
    return EpochLoader(
        dataset,
        sampler,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        drop_last=True,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )


def make_loader(
    dataset,
    batch_size: int,
    shuffle: bool = True,
    num_workers: int = 0,
    seed: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
) -> EpochLoader:
    """The seeded loader of a `build_dataset` dataset (rank/world from torch.distributed when initialised).

    A `WindowDataset` is read through a `ResumableSampler`; a `ShardDataset` streams instead: rank
    `rank` reads its own shards. Either way the loader yields `loader_batches_per_epoch(loader)`
    batches per epoch; call `set_loader_epoch(loader, epoch, skip_batches)` at the start of every epoch.
    """
    if rank is None or world_size is None:
        initialised = dist.is_available() and dist.is_initialized()
        rank = dist.get_rank() if initialised else 0
        world_size = dist.get_world_size() if initialised else 1
    return dataset.loader(batch_size, shuffle, num_workers, seed, rank, world_size)


def set_loader_epoch(loader: EpochLoader, epoch: int, skip_batches: int = 0) -> None:
    """Start `epoch` at batch `skip_batches` (an exact resume inside an epoch)."""
    loader.set_epoch(epoch, skip_batches)


def loader_batches_per_epoch(loader: EpochLoader) -> int:
    """Batches per epoch and rank of a `make_loader` loader (map-style or shards)."""
    return loader.batches_per_epoch()


__all__ = ["EpochLoader", "ResumableSampler", "collate", "epoch_order", "loader_batches_per_epoch", "make_loader", "sampled_loader",
           "seed_worker", "set_loader_epoch"]
