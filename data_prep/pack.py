"""pack: a dataset as WebDataset tar shards of whole samples (the format: ifrvp_core.data.shards).

Samples are whole and un-augmented: the K + n frames as 8-bit RGB PNG (lossless, so the decoded
pixels equal the folder reader's bit for bit), the flows the dataset has as `.npy` (and those of the
time-reversed window when prepared), and a `.json` member naming the sample. Shards are written as
hidden `<out>/.<split>-NNNNNN.tar.partial` files and renamed when complete; the manifest
`<out>/<split>-index.json` is written atomically last, so a pack that did not finish has none.
"""
from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import webdataset as wds
from tqdm.auto import tqdm

from ifrvp_core.atomic import write_text_atomic
from ifrvp_core.data import build_dataset
from ifrvp_core.data.datasets import WindowDataset
from ifrvp_core.data.io import DataError
from ifrvp_core.data.shards import MANIFEST_FORMAT, manifest_path

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text) -> int:
    """Bytes from "1GB", "500MB", "1.5GB", "64KiB" or a plain byte count (decimal units: 1GB = 10^9)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"--shard_size {text!r} is not a size: use bytes or a number with B, KB, MB, GB, TB (or KiB, MiB, GiB)")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"--shard_size {text!r} must be larger than 0 bytes")
    return size


def encode_png(rgb: np.ndarray, where: str) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise DataError(f"cannot encode {where} as PNG")
    return data.tobytes()


def encode_npy(array) -> bytes:
    handle = io.BytesIO()
    np.save(handle, np.asarray(array), allow_pickle=False)
    return handle.getvalue()


def sample_record(source: WindowDataset, index: int, split: str) -> tuple[dict, tuple, bool]:
    """(tar record, frame size (H, W), whether the time-reversed flows are in it) of sample `index`."""
    frames, _, target_times = source.window_layout(index)
    images = source.load_frames(frames)
    name, k = source.windows[index].name, source.context_frames
    record = {"__key__": f"{index:09d}"}
    for i, image in enumerate(images):
        member = f"context_{i}.png" if i < k else f"target_{i - k}.png"
        record[member] = encode_png(image, f"{name} {member}")
    flows = source.load_flows(index)
    for flow_name, value in flows.items():
        record[f"{flow_name}.npy"] = encode_npy(value.numpy())
    with_reversed = False
    if flows:
        try:
            for flow_name, value in source.load_flows(index, reverse=True).items():
                record[f"{flow_name}_reversed.npy"] = encode_npy(value.numpy())
            with_reversed = True
        except DataError:  # time-reversed teacher flow not prepared (teacher_flow --both-directions false)
            pass
    meta = {
        "name": name, "index": index, "dataset": source.source, "split": split, "context_frames": k,
        "target_times": target_times, "frame_size": list(images.shape[1:3]), "files": source.sample_files(index),
        "flows": sorted(m.removesuffix(".npy") for m in record if m.endswith(".npy")),
    }
    record["json"] = json.dumps(meta).encode("utf-8")
    return record, tuple(images.shape[1:3]), with_reversed


class ShardFiles:
    """Writes records into `<out>/.<split>-NNNNNN.tar.partial` shards of about `max_bytes`, renamed when complete.

    `shards` lists {"name", "samples", "bytes"} per shard, in order, once `close()` has run.
    """

    def __init__(self, out: Path, split: str, max_bytes: int):
        self.shards: list[dict] = []
        self.writer = wds.ShardWriter(str(out / f".{split}-%06d.tar.partial"), maxcount=10**9, maxsize=max_bytes, post=self._finished,
                                      verbose=0, encoder=False, mtime=0.0)

    def _finished(self, partial: str) -> None:
        partial = Path(partial)
        final = partial.with_name(partial.name[1:].removesuffix(".partial"))
        os.replace(partial, final)
        self.shards[-1].update(bytes=final.stat().st_size)

    def write(self, record: dict) -> None:
        writer = self.writer
        writer.write(record)  # closes the current shard first once it holds max_bytes (its `post` renames it)
        if not self.shards or self.shards[-1]["partial"] != writer.fname:
            self.shards.append({"name": Path(writer.fname).name[1:].removesuffix(".partial"), "samples": 0, "partial": writer.fname})
        self.shards[-1]["samples"] += 1

    def close(self) -> None:
        self.writer.close()
        for shard in self.shards:
            shard.pop("partial")

    def abort(self) -> None:
        """Close and delete the shard being written (an interrupted pack leaves no `.partial` file)."""
        if getattr(self.writer, "tarstream", None) is not None:
            self.writer.tarstream.close()
            Path(self.writer.fname).unlink(missing_ok=True)


def remove_stale_shards(out: Path, split: str, names: set) -> None:
    """Delete `<split>-NNNNNN.tar` files of an earlier, larger pack (a folder glob would pick them up)."""
    for stale in out.glob(f"{split}-[0-9][0-9][0-9][0-9][0-9][0-9].tar"):
        if stale.name not in names:
            stale.unlink()


def pack_dataset(dataset: str, root, out, split: str = "train", shard_size="1GB", context_frames: int = 2, future_frames: int = 1,
                 task: str = "extrapolate", frame_stride: int | None = None, window_step: int | None = None,
                 shuffle: bool | None = None, seed: int = 0, progress: bool = True) -> dict:
    """Write `dataset`'s `split` as WebDataset shards `<out>/<split>-NNNNNN.tar` and the manifest; returns the manifest.

    Samples are whole and un-augmented; shards close once they reach `shard_size` bytes (so one
    can exceed it by one sample). `shuffle` (default: for the train split) writes the samples in a
    seeded random order, so a shard holds windows of many clips; test splits keep their order.
    """
    if str(dataset).lower() == "shards":
        raise ValueError("--dataset shards: pack reads a folder dataset (vimeo90k, gopro, cityscapes, frames, synthetic)")
    max_bytes = parse_size(shard_size)
    source = build_dataset(dataset, root, split, context_frames=context_frames, future_frames=future_frames, task=task,
                           frame_stride=frame_stride, window_step=window_step, teacher_flow="files")
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    manifest_file = manifest_path(out, split)
    manifest_file.unlink(missing_ok=True)  # from here on an unfinished pack has no manifest
    shuffle = split == "train" if shuffle is None else shuffle
    order = np.random.default_rng(seed).permutation(len(source)).tolist() if shuffle else list(range(len(source)))
    frame_sizes: set = set()
    reversed_flows = 0
    files = ShardFiles(out, split, max_bytes)
    bar = tqdm(total=len(order), desc=f"pack {dataset} {split}", unit="sample", disable=not progress)
    try:
        for index in order:
            record, frame_size, with_reversed = sample_record(source, index, split)
            frame_sizes.add(frame_size)
            reversed_flows += with_reversed
            files.write(record)
            bar.update(1)
        files.close()
    except BaseException:
        bar.close()
        files.abort()
        raise
    bar.close()
    remove_stale_shards(out, split, {shard["name"] for shard in files.shards})
    manifest = {
        "format": MANIFEST_FORMAT, "dataset": source.source, "root": str(Path(root).resolve()) if root else None, "split": split,
        "context_frames": context_frames, "future_frames": future_frames, "task": task, "frame_stride": frame_stride,
        "target_times": source.target_times,
        "frame_size": list(next(iter(frame_sizes))) if len(frame_sizes) == 1 else None,  # None: clips of several sizes
        "shuffled": shuffle, "seed": seed,
        "synthetic": source.synthetic, "teacher_flow": source.teacher_suffix is not None, "reversed_flows": reversed_flows,
        "samples": len(order), "shard_size": max_bytes, "shards": files.shards,
    }
    write_text_atomic(manifest_file, json.dumps(manifest, indent=1))
    return manifest


def summary(manifest: dict, out) -> str:
    """The line `pack` prints: shard and sample counts, the pattern to train with, the manifest."""
    shards, split = manifest["shards"], manifest["split"]
    total = sum(shard["bytes"] for shard in shards)
    pattern = f"{Path(out)}/{split}-{{000000..{len(shards) - 1:06d}}}.tar"
    return (f"{len(shards)} shard(s), {manifest['samples']} samples, {total / 1e6:.1f} MB -> {pattern}\n"
            f"manifest {manifest_path(out, split)}; train with --dataset shards --data_root '{pattern}'")


__all__ = ["encode_npy", "encode_png", "pack_dataset", "parse_size", "summary"]
