"""pack: a dataset as WebDataset tar shards of whole samples (see ifrvp_core.data.shards for the format)."""
from __future__ import annotations

from pathlib import Path

from ifrvp_core.data.shards import manifest_path, pack_dataset


def summary(manifest: dict, out) -> str:
    """The line `pack` prints: shard and sample counts, the pattern to train with, the manifest."""
    shards, split = manifest["shards"], manifest["split"]
    total = sum(shard["bytes"] for shard in shards)
    pattern = f"{Path(out)}/{split}-{{000000..{len(shards) - 1:06d}}}.tar"
    return (f"{len(shards)} shard(s), {manifest['samples']} samples, {total / 1e6:.1f} MB -> {pattern}\n"
            f"manifest {manifest_path(out, split)}; train with --dataset shards --data_root '{pattern}'")


__all__ = ["pack_dataset", "summary"]
