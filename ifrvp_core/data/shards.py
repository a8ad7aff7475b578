"""WebDataset shards: stream tar archives of whole samples (written by `data_prep pack`) on many nodes.

Loose PNG files on a shared file system are the usual bottleneck of multi-node video training;
large-scale trainers read a few large tar archives sequentially instead. The format is
WebDataset's (written with `webdataset.ShardWriter`, read with `webdataset.tarfile_samples`), so
any WebDataset tool can open the shards. One sample is the members sharing a key:

    000000042.json                 name, index (the sample's index in the packed dataset), files,
                                   context_frames, target_times, dataset, split, frame_size, flows
    000000042.context_0.png ...    the K context frames, 8-bit RGB PNG (lossless: the decoded
    000000042.target_0.png ...     pixels equal the folder reader's bit for bit)
    000000042.teacher_flow.npy     prepared teacher flow (2K,H,W) float32, when the dataset has it,
    000000042.teacher_flow_reversed.npy   and the flow of the time-reversed window when prepared
    000000042.gt_flow.npy ...      synthetic data: exact gt_flow / gt_valid (and *_reversed)

`data_prep pack` (data_prep/pack.py) writes `<out>/<split>-000000.tar ...` as hidden `.partial`
files renamed when complete, and `<out>/<split>-index.json` (the manifest: sample and shard counts,
shard sizes, the window layout) atomically last, so a pack that did not finish has no manifest and
is refused. This module is the reader: it defines the format and never writes.

Reading (`build_dataset("shards", "SHARDS/train-{000000..000123}.tar")`, a folder or a manifest):
each epoch the shard order is a permutation seeded by (seed, epoch); rank r of R takes every R-th
shard of it and DataLoader worker w of W every W-th of those, so no shard is read twice in an
epoch. Inside its shards a reader shuffles samples with a seeded buffer. Every rank yields the
same number of batches, `samples // R // batch` (a reader whose shards run short starts another
pass over them), so DDP steps stay in lockstep. Time reversal and the augmentations are drawn
from the generator of (seed, epoch, sample index), exactly as the folder reader does, so a shard
sample and a folder sample with the same index are identical, augmented or not.
"""
from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path

import cv2
import numpy as np
import torch
import webdataset as wds
from torch.utils.data import IterableDataset

from ifrvp_core.data.augment import AugmentConfig
from ifrvp_core.data.io import DataError, SplitNotFoundError
from ifrvp_core.data.loader import EpochLoader, collate, epoch_order, seed_worker
from ifrvp_core.data.sample import (
    check_flow_region,
    draw_time_reverse,
    finish_sample,
    make_sample,
    reverse_window,
    sample_rng,
    window_target_times,
)
from ifrvp_core.data.teacher import DEFAULT_TEACHER_MODE, describe_teacher_source, teacher_mode

MANIFEST_FORMAT = "ifrvp-shards/1"
SHARD_NAME = re.compile(r"^(?P<split>.+)-(?P<number>\d{6})\.tar$")
SPLIT_ALIASES = {"test": ("test", "val"), "val": ("val", "test")}


def manifest_path(out, split: str) -> Path:
    return Path(out) / f"{split}-index.json"


# ----------------------------------------------------------------------------- members
def decode_png(data: bytes, where: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise DataError(f"cannot decode {where} (truncated or corrupt PNG)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_npy(data: bytes, where: str) -> torch.Tensor:
    try:
        return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False))
    except Exception as error:  # noqa: BLE001 - any decoding problem names the member
        raise DataError(f"cannot decode {where}: {error}") from error


def frame_members(context_frames: int, future_frames: int) -> list[str]:
    """The PNG members of one sample, in window order: context_0.png ... then target_0.png ..."""
    return [f"context_{i}.png" for i in range(context_frames)] + [f"target_{i}.png" for i in range(future_frames)]


def sample_meta(raw: dict, where: str) -> dict:
    """The `.json` member of a raw shard sample (name, index, files, ...); `DataError` when missing or unreadable."""
    if "json" not in raw:
        raise DataError(f"{where} has no .json member")
    try:
        meta = json.loads(raw["json"])
        meta["index"] = int(meta["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(f"{where} has an unreadable .json member: {error}") from error
    return meta


def shard_sample_counts(urls: list[str], manifest: dict, root: str) -> list[int]:
    """Samples per shard from the manifest; local shards must exist with the size the manifest lists."""
    counts = {shard["name"]: shard for shard in manifest["shards"]}
    samples = []
    for url in urls:
        name = url.rsplit("/", 1)[-1]
        if name not in counts:
            raise DataError(f"shard {url} is not listed in its manifest ({len(counts)} shards of split {manifest['split']!r})")
        if not _is_url(url):
            if not Path(url).is_file():
                raise DataError(f"shard not found: {url}")
            if Path(url).stat().st_size != counts[name]["bytes"]:
                raise DataError(f"shard {url} has {Path(url).stat().st_size} bytes, its manifest says {counts[name]['bytes']}: "
                                "it was changed or cut short; pack again")
        samples.append(int(counts[name]["samples"]))
    return samples


# ----------------------------------------------------------------------------- locate
def _is_url(text: str) -> bool:
    return "://" in text or text.startswith("pipe:")


def _read_manifest(location: str) -> dict:
    if _is_url(location):
        try:
            with wds.gopen(location, "rb") as handle:
                data = handle.read()
        except Exception as error:  # noqa: BLE001
            raise DataError(f"cannot read shard manifest {location}: {error}") from error
    else:
        path = Path(location)
        if not path.is_file():
            raise DataError(f"shard manifest not found: {path} (data_prep pack writes it last; a pack that did not finish has none)")
        data = path.read_bytes()
    try:
        manifest = json.loads(data)
    except json.JSONDecodeError as error:
        raise DataError(f"shard manifest {location} is not valid JSON: {error}") from error
    if manifest.get("format") != MANIFEST_FORMAT:
        raise DataError(f"{location} is not an IFRVP shard manifest (format {manifest.get('format')!r}, expected {MANIFEST_FORMAT})")
    return manifest


def _sibling(url: str, name: str) -> str:
    return f"{url.rsplit('/', 1)[0]}/{name}" if "/" in url else name


def locate_shards(root, split: str = "train") -> tuple[list[str], dict]:
    """(shard URLs, manifest) from a brace pattern or URL list ("a::b"), a shards folder or a manifest file.

    The manifest `<split>-index.json` sits next to the shards. A pattern of another split (the
    trainer's validation reads the test split next to the training shards) reads the sibling manifest.
    """
    text = str(root)
    local_dir = not _is_url(text) and "{" not in text and Path(text).expanduser().is_dir()
    if local_dir or text.endswith(".json"):
        base = str(Path(text).expanduser()) if local_dir else text.rsplit("/", 1)[0] if "/" in text else "."
        candidates = [f"{base}/{s}-index.json" for s in SPLIT_ALIASES.get(split, (split,))] if local_dir else [text]
        found = [c for c in candidates if _is_url(c) or Path(c).is_file()]
        manifest = _read_manifest(found[0] if found else candidates[0])
        return [f"{base}/{shard['name']}" for shard in manifest["shards"]], manifest
    urls = [u if _is_url(u) else str(Path(u).expanduser()) for u in wds.shardlists.expand_urls(text)]
    if not urls:
        raise DataError(f"no shards in {text!r}")
    match = SHARD_NAME.match(urls[0].rsplit("/", 1)[-1])
    if match is None:
        raise DataError(f"shard {urls[0]} is not named <split>-NNNNNN.tar (as data_prep pack writes them)")
    if match["split"] not in SPLIT_ALIASES.get(split, (split,)):  # another split of the same pack: all its shards
        candidates = [_sibling(urls[0], f"{s}-index.json") for s in SPLIT_ALIASES.get(split, (split,))]
        found = [c for c in candidates if _is_url(c) or Path(c).is_file()]
        if not found:
            raise SplitNotFoundError(f"no {split} split next to the shards {text}: {candidates[0]} not found; pack it too "
                            f"(ifrvp prep pack --split {split} --output {urls[0].rsplit('/', 1)[0] if '/' in urls[0] else '.'} ...): "
                            "training validates on it")
        manifest = _read_manifest(found[0])
        return [_sibling(urls[0], shard["name"]) for shard in manifest["shards"]], manifest
    manifest = _read_manifest(_sibling(urls[0], f"{match['split']}-index.json"))
    return urls, manifest


# ----------------------------------------------------------------------------- read
def _as_is(batch):
    return batch


class ShardDataset(IterableDataset):
    """Samples streamed from WebDataset shards, in the sample layout of docs/architecture.md.

    Iterating yields collated batches for one rank (`configure` sets batch size, rank and world
    size; `make_loader` does it); `samples()` yields single samples of one reader's shards;
    `dataset[i]` reads the i-th packed sample (sequential access is cheap: validation).
    `prior_flow` and `flow_region` are `WindowDataset`'s: the motion prior in every sample, and
    where the DIS flows are computed.
    """

    def __init__(self, root, split: str = "train", context_frames: int = 2, future_frames: int = 1, task: str = "extrapolate",
                 frame_stride: int | None = None, augment: AugmentConfig | None = None, seed: int = 0,
                 teacher_flow: bool | str = DEFAULT_TEACHER_MODE, shuffle_buffer: int = 100, prior_flow: bool = False,
                 flow_region: str = "crop"):
        self.root = str(root)
        self.urls, self.manifest = locate_shards(root, split)
        manifest = self.manifest
        wanted = {"context_frames": context_frames, "future_frames": future_frames, "task": task}
        if frame_stride is not None:
            wanted["frame_stride"] = frame_stride
        for key, value in wanted.items():
            if manifest.get(key) != value:
                raise DataError(f"shards {self.root} were packed with {key}={manifest.get(key)!r}, but {value!r} was asked for; "
                                f"pack again with --{key} {value}")
        self.shard_samples = shard_sample_counts(self.urls, manifest, self.root)
        mode = teacher_mode(teacher_flow)
        self.context_frames = context_frames
        self.target_times = [float(t) for t in manifest["target_times"]]
        self.synthetic = bool(manifest["synthetic"])
        self.source = f"shards ({manifest['dataset']})"
        self.augment, self.seed, self.epoch = augment, seed, 0
        self.stored_teacher = not self.synthetic and manifest["teacher_flow"] and mode.stored
        if mode.required and not self.synthetic and not self.stored_teacher:
            raise DataError(f"teacher flow requested but the shards {self.root} hold none; prepare it with data_prep teacher_flow "
                            "before packing, or use teacher_flow='dis'")
        self.teacher_on_the_fly = not self.synthetic and not self.stored_teacher and mode.dis
        self.prior_flow = bool(prior_flow)  # samples carry `prior_flow` (DIS in the loader workers, not the training step)
        self.flow_region = check_flow_region(flow_region)
        self.shuffle_buffer = shuffle_buffer
        self.batch_size, self.shuffle, self.rank, self.world_size, self.skip_batches = 1, True, 0, 1, 0
        self._cursor = None  # (shard, next position in it, raw sample iterator) for dataset[i]

    # -------------------------------------------------------------- description
    @property
    def teacher_source(self) -> str:
        stored = f"stored in the shards {self.root}" if self.stored_teacher else None
        return describe_teacher_source(self.synthetic, stored, self.teacher_on_the_fly, self.flow_region)

    def __len__(self) -> int:
        return sum(self.shard_samples)

    def __getstate__(self):  # DataLoader workers: no open tar stream travels
        state = dict(self.__dict__)
        state["_cursor"] = None
        return state

    # -------------------------------------------------------------- epochs and ranks
    def configure(self, batch_size: int, shuffle: bool = True, rank: int = 0, world_size: int = 1, num_workers: int = 0) -> "ShardDataset":
        """A copy that streams `rank`'s batches; raises when the shards are too few or too small."""
        readers = world_size * max(1, num_workers)
        if len(self.urls) < readers:
            raise DataError(f"{len(self.urls)} shard(s) in {self.root} cannot feed {world_size} rank(s) x {max(1, num_workers)} "
                            f"loader worker(s) (each reader needs its own shards): pack with a smaller --shard_size")
        stream = copy.copy(self)
        stream.batch_size, stream.shuffle, stream.rank, stream.world_size = batch_size, shuffle, rank, world_size
        stream._cursor = None
        if stream.batches_per_epoch() < 1:
            raise ValueError(f"dataset of {len(self)} samples is too small for {world_size} rank(s) x batch {batch_size}")
        return stream

    def loader(self, batch_size: int, shuffle: bool, num_workers: int, seed: int, rank: int, world_size: int) -> EpochLoader:
        """This dataset's loader (`make_loader`): rank `rank` streams its own shards (`shard_loader`)."""
        return shard_loader(self, batch_size, shuffle, num_workers, seed, rank, world_size)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, skip_batches

    def batches_per_epoch(self) -> int:
        """Batches every rank yields per epoch: samples // world_size // batch_size (as the folder reader)."""
        return len(self) // self.world_size // self.batch_size

    def epoch_shards(self, epoch: int) -> list[int]:
        """The shard order of `epoch` (a permutation seeded by (seed, epoch); file order without shuffling)."""
        if not self.shuffle:
            return list(range(len(self.urls)))
        return epoch_order(len(self.urls), self.seed, epoch)  # the folder reader's per-epoch permutation, over shards

    def reader_shards(self, epoch: int, rank: int, world_size: int, worker: int = 0, workers: int = 1) -> list[int]:
        """The shards that loader worker `worker` of rank `rank` reads in `epoch`: disjoint across all readers."""
        return self.epoch_shards(epoch)[rank::world_size][worker::workers]

    # -------------------------------------------------------------- reading
    def raw_samples(self, shard_indices: list[int]):
        """Raw samples ({member: bytes}) of these shards, in order (webdataset's tar reader)."""
        for shard in shard_indices:
            url = self.urls[shard]
            try:
                yield from wds.tarfile_samples([{"url": url}])
            except DataError:
                raise
            except Exception as error:  # noqa: BLE001 - a shard that cannot be read names itself
                raise DataError(f"cannot read shard {url}: {error}") from error

    def _reader_stream(self, epoch: int, rank: int, world_size: int, worker: int, workers: int, passes: int | None = 1):
        """Raw samples of one reader in its seeded order; `passes=None` repeats its shards forever."""
        shards = self.reader_shards(epoch, rank, world_size, worker, workers)
        number = 0
        while passes is None or number < passes:
            raw = self.raw_samples(shards)
            if self.shuffle and self.shuffle_buffer > 1:
                key = f"{self.seed}/{epoch}/{rank}/{worker}/{workers}/{number}"
                raw = wds.shuffle(self.shuffle_buffer, self.shuffle_buffer, seed=key)(raw)
            count = 0
            for sample in raw:
                count += 1
                yield sample
            if count == 0:
                raise DataError(f"shards {[self.urls[s] for s in shards]} hold no samples")
            number += 1

    def decode(self, raw: dict) -> dict:
        """A raw shard sample as a training sample: time reversal and augmentations from the generator
        of (seed, epoch, sample index), exactly as `WindowDataset.__getitem__` draws them."""
        where = f"sample {raw.get('__key__')} of {raw.get('__url__')}"
        meta = sample_meta(raw, where)
        k, index = self.context_frames, meta["index"]
        members = frame_members(k, len(self.target_times))
        missing = [m for m in members if m not in raw]
        if missing:
            raise DataError(f"{where} lacks {', '.join(missing)}")
        rng = sample_rng(self.seed, self.epoch, index)
        reverse = draw_time_reverse(self.augment, rng)
        images = [decode_png(raw[m], f"{where} member {m}") for m in members]
        if reverse:
            images = reverse_window(images, k, self.target_times)
        flows = {}
        names = ("gt_flow", "gt_valid") if self.synthetic else ("teacher_flow",) if self.stored_teacher else ()
        for flow_name in names:
            member = f"{flow_name}{'_reversed' if reverse else ''}.npy"
            if member not in raw:
                raise DataError(f"{where} has no {member} (the flow of the {'time-reversed ' if reverse else ''}window); "
                                "prepare teacher flow for both directions (data_prep teacher_flow) and pack again")
            flows[flow_name] = decode_npy(raw[member], f"{where} member {member}")
        sample = make_sample(np.stack(images), k, window_target_times(self.target_times, reverse), meta["name"], flows)
        return finish_sample(sample, self.augment, rng, self.teacher_on_the_fly, self.prior_flow, self.flow_region)

    def samples(self, epoch: int | None = None, rank: int = 0, world_size: int = 1, worker: int = 0, workers: int = 1):
        """Decoded samples of one reader's shards, one pass, in stream order (no batching, no repetition)."""
        if epoch is not None:
            self.epoch = epoch
        for raw in self._reader_stream(self.epoch, rank, world_size, worker, workers, passes=1):
            yield self.decode(raw)

    def __iter__(self):
        """This rank's batches of the epoch from position `skip_batches` on (set_epoch), collated.

        Batch position p of the epoch comes from reader role p % W (W loader workers), as the
        DataLoader takes batches from its workers in turn; after a resume at position s, worker w
        plays role (w + s) % W so the order stays that of an uninterrupted epoch. Skipped batches
        are read but not decoded.
        """
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        total, skip, batch = self.batches_per_epoch(), self.skip_batches, self.batch_size
        role = (worker + skip) % workers
        stream = self._reader_stream(self.epoch, self.rank, self.world_size, role, workers, passes=None)
        for position in range(role, total, workers):
            raws = [next(stream) for _ in range(batch)]
            if position >= skip:
                yield collate([self.decode(raw) for raw in raws])

    def __getitem__(self, index: int) -> dict:
        """The `index`-th packed sample (shard order of the manifest); reading on from the last one is cheap."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range: {len(self)} samples in {self.root}")
        shard, offset = 0, index
        while offset >= self.shard_samples[shard]:
            offset -= self.shard_samples[shard]
            shard += 1
        if self._cursor is None or self._cursor[0] != shard or self._cursor[1] > offset:
            self._cursor = [shard, 0, iter(self.raw_samples([shard]))]
        while True:
            try:
                raw = next(self._cursor[2])
            except StopIteration:
                self._cursor = None
                raise DataError(f"shard {self.urls[shard]} ends before sample {offset} (its manifest lists {self.shard_samples[shard]})")
            self._cursor[1] += 1
            if self._cursor[1] - 1 == offset:
                return self.decode(raw)


def shard_loader(dataset: ShardDataset, batch_size: int, shuffle: bool, num_workers: int, seed: int, rank: int, world_size: int,
                 worker_init_fn=seed_worker) -> EpochLoader:
    """An `EpochLoader` over `rank`'s batches of the shards (the dataset collates; `set_loader_epoch` sets epoch and skip)."""
    stream = dataset.configure(batch_size, shuffle, rank, world_size, num_workers)
    return EpochLoader(stream, stream, batch_size=None, num_workers=num_workers, collate_fn=_as_is, worker_init_fn=worker_init_fn,
                       generator=torch.Generator().manual_seed(seed), persistent_workers=False, pin_memory=torch.cuda.is_available())


__all__ = ["MANIFEST_FORMAT", "SHARD_NAME", "ShardDataset", "decode_npy", "decode_png", "locate_shards", "manifest_path", "shard_loader"]
