"""WebDataset shards: pack, read bit for bit like the folder reader, rank/worker split, per-epoch order, training."""
import dataclasses
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data_prep import compute_teacher_flow
from data_prep.__main__ import main as data_prep_main
from ifrvp_core.data import DataError, build_dataset, ensure_synthetic, loader_batches_per_epoch, make_loader, set_loader_epoch
from data_prep.pack import parse_size
from ifrvp_core.train import Dist, TrainConfig, Trainer, main as train_main

H, W = 32, 48


def write_clip(folder: Path, count: int, seed: int) -> None:
    """Frames of a smooth random texture drifting right by 1 px per frame (DIS finds flow in it)."""
    rng = np.random.default_rng(seed)
    texture = cv2.resize(rng.integers(0, 256, (H // 4, (W + count) // 4, 3), dtype=np.uint8), (W + count, H), interpolation=cv2.INTER_CUBIC)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(np.ascontiguousarray(texture[:, count - i : count - i + W]), cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory):
    """Two clips of 8 frames: 10 training windows, with DIS teacher flow for both time directions."""
    root = tmp_path_factory.mktemp("frames")
    for n in range(2):
        write_clip(root / f"clip{n}", 8, n)
    assert compute_teacher_flow("frames", root, ("train",), progress=False) > 0
    return root


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    """Synthetic set: 3 training clips x 3 windows, 1 test window, 24x32, with exact flow."""
    return ensure_synthetic(tmp_path_factory.mktemp("synthetic"), progress=False, train_clips=3, test_clips=1, num_frames=5, height=24, width=32)


def pack(dataset, root, out, split="train", shard_size="20KB"):
    code = data_prep_main(["pack", "--dataset", dataset, "--root", str(root), "--out", str(out), "--split", split, "--shard-size", shard_size])
    assert code == 0
    return json.loads((out / f"{split}-index.json").read_text())


def assert_same_sample(folder_sample: dict, shard_sample: dict) -> None:
    assert folder_sample.keys() == shard_sample.keys()
    for key, value in folder_sample.items():
        if isinstance(value, torch.Tensor):
            assert value.dtype == shard_sample[key].dtype and torch.equal(value, shard_sample[key]), (folder_sample["name"], key)
        else:
            assert value == shard_sample[key], key


# ----------------------------------------------------------------------------- pack + read
@pytest.mark.parametrize("kind", ["frames", "synthetic"])
def test_shard_reader_equals_folder_reader_bit_for_bit(kind, frames_root, synthetic_root, tmp_path, capsys):
    root = frames_root if kind == "frames" else synthetic_root
    manifest = pack(kind, root, tmp_path / "shards")
    printed = capsys.readouterr().out
    folder = build_dataset(kind, root, "train", seed=7)
    shard_count = len(manifest["shards"])
    assert manifest["samples"] == len(folder) == (10 if kind == "frames" else 9)
    assert shard_count >= 2 and f"{shard_count} shard(s), {len(folder)} samples" in printed
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == sorted(
        [f"train-{i:06d}.tar" for i in range(shard_count)] + ["train-index.json"])  # no .partial files left
    members = tarfile.open(tmp_path / "shards" / "train-000000.tar").getnames()
    flow = "teacher_flow" if kind == "frames" else "gt_flow"
    assert {f"{members[0].split('.')[0]}.{m}" for m in ("json", "context_0.png", "context_1.png", "target_0.png", f"{flow}.npy",
                                                        f"{flow}_reversed.npy")} <= set(members)

    pattern = str(tmp_path / "shards" / f"train-{{000000..{shard_count - 1:06d}}}.tar")
    for augment in (False, True):  # un-augmented: the pixels; augmented: the same draws from (seed, epoch, index)
        shards = build_dataset("shards", pattern, "train", augment=augment, crop_size=16, seed=7)
        folder = build_dataset(kind, root, "train", augment=augment, crop_size=16, seed=7)
        assert len(shards) == len(folder) and shards.teacher_source.startswith("prepared" if kind == "frames" else "synthetic")
        for epoch in (0, 1) if augment else (0,):
            folder.set_epoch(epoch)
            by_rank = [[s for s in shards.samples(epoch, rank=r, world_size=2)] for r in (0, 1)]
            names = [[s["name"] for s in samples] for samples in by_rank]
            assert names[0] and names[1] and not set(names[0]) & set(names[1])  # each rank its own shards
            read = {s["name"]: s for samples in by_rank for s in samples}
            assert len(read) == len(folder) and sorted(read) == sorted(folder[i]["name"] for i in range(len(folder)))
            for index in range(len(folder)):
                expected = folder[index]
                assert_same_sample(expected, read[expected["name"]])
                if augment:
                    assert expected["context"].shape[-2:] == (16, 16)


def test_teacher_modes_and_validation_access(frames_root, synthetic_root, tmp_path):
    pack("frames", frames_root, tmp_path / "f")
    assert "teacher_flow" not in build_dataset("shards", tmp_path / "f", teacher_flow=False)[0]
    dis = build_dataset("shards", tmp_path / "f", teacher_flow="dis")  # DIS on the fly, computed like the folder reader's
    assert dis.teacher_source.startswith("DIS")
    # "files" (the default) and "auto" (training's) read stored flow; without it "auto" computes DIS, "files" gives none
    assert build_dataset("shards", tmp_path / "f").teacher_source.startswith("prepared files (stored in the shards")
    assert build_dataset("shards", tmp_path / "f", teacher_flow="auto").teacher_source.startswith("prepared files (stored in the shards")
    write_clip(tmp_path / "plain" / "clip0", 8, 0)
    pack("frames", tmp_path / "plain", tmp_path / "p")
    assert build_dataset("shards", tmp_path / "p", teacher_flow="auto").teacher_source.startswith("DIS on the fly")
    assert build_dataset("shards", tmp_path / "p", teacher_flow="files").teacher_source == "none"
    folder = build_dataset("frames", frames_root, teacher_flow="dis")
    sample = dis[3]  # the 4th packed sample: training packs are written in a seeded random order
    index = [folder.windows[i].name for i in range(len(folder))].index(sample["name"])
    assert index != 3 and sample["teacher_flow"].abs().mean() > 0.3  # the texture drifts by 1 px per frame
    assert_same_sample(folder[index], sample)
    (tmp_path / "g").mkdir()
    pack("synthetic", synthetic_root, tmp_path / "g", split="test")
    pack("synthetic", synthetic_root, tmp_path / "g", split="train")
    # the trainer builds its validation set from the training pattern: the sibling test manifest
    test = build_dataset("shards", str(tmp_path / "g" / "train-{000000..000001}.tar"), "test")
    folder_test = build_dataset("synthetic", synthetic_root, "test")
    assert len(test) == len(folder_test) == 1
    assert_same_sample(folder_test[0], test[0])
    train = build_dataset("shards", tmp_path / "g" / "train-index.json")
    folder_train = build_dataset("synthetic", synthetic_root, "train")
    by_name = {folder_train[i]["name"]: folder_train[i] for i in range(len(folder_train))}
    for position in (0, 1, 5, 2, 8):  # random access: forwards within a shard, backwards, across shards
        sample = train[position]
        assert_same_sample(by_name[sample["name"]], sample)
    with pytest.raises(IndexError, match="9 samples"):
        train[9]


# ----------------------------------------------------------------------------- order
def test_order_is_seeded_per_epoch_split_across_ranks_and_workers_and_resumable(synthetic_root, tmp_path):
    manifest = pack("synthetic", synthetic_root, tmp_path / "s", shard_size="1B")  # one sample per shard
    assert len(manifest["shards"]) == 9 and all(s["samples"] == 1 for s in manifest["shards"])
    shards = build_dataset("shards", tmp_path / "s", seed=3)
    stream = shards.configure(batch_size=1, world_size=2, rank=0)
    for epoch in (0, 1):
        readers = [stream.reader_shards(epoch, rank, 2, worker, 2) for rank in (0, 1) for worker in (0, 1)]
        flat = [s for reader in readers for s in reader]
        assert sorted(flat) == list(range(9)) and all(readers)  # disjoint, all shards, nobody idle
    assert stream.epoch_shards(0) == build_dataset("shards", tmp_path / "s", seed=3).configure(1).epoch_shards(0)
    assert stream.epoch_shards(0) != stream.epoch_shards(1) and sorted(stream.epoch_shards(1)) == list(range(9))
    assert stream.epoch_shards(0) != build_dataset("shards", tmp_path / "s", seed=4).configure(1).epoch_shards(0)

    def names(loader, epoch, skip=0):
        set_loader_epoch(loader, epoch, skip)
        return [batch["name"] for batch in loader]

    for workers in (0, 2):
        loader = make_loader(shards, 2, True, workers, 3, rank=0, world_size=1)
        assert loader_batches_per_epoch(loader) == 4  # 9 samples // batch 2
        epoch0 = names(loader, 0)
        assert len(epoch0) == 4 and all(len(b) == 2 for b in epoch0) and len({n for b in epoch0 for n in b}) == 8
        assert names(loader, 0) == epoch0 and names(loader, 1) != epoch0
        assert names(loader, 0, skip=1) == epoch0[1:] and names(loader, 0, skip=3) == epoch0[3:]  # exact resume
    ranks = [names(make_loader(shards, 2, True, 0, 3, rank=r, world_size=2), 0) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 2  # lockstep: 9 // 2 ranks // batch 2
    assert not {n for b in ranks[0] for n in b} & {n for b in ranks[1] for n in b}
    with pytest.raises(DataError, match="9 shard.*5 rank"):
        make_loader(shards, 1, True, num_workers=2, seed=3, rank=0, world_size=5)


# ----------------------------------------------------------------------------- errors
def test_bad_shard_size_partial_pack_and_mismatch_give_clear_errors(synthetic_root, tmp_path, capsys, monkeypatch):
    assert parse_size("1GB") == 10**9 and parse_size("500MB") == 5 * 10**8 and parse_size("64KiB") == 65536
    assert parse_size("1.5GB") == 1_500_000_000 and parse_size(123) == 123
    for bad in ("lots", "1XB", "0", "-5MB"):
        with pytest.raises(ValueError, match=f"--shard_size '{bad}'"):
            parse_size(bad)
    code = data_prep_main(["pack", "--dataset", "synthetic", "--root", str(synthetic_root), "--out", str(tmp_path / "x"), "--shard-size", "1XB"])
    assert code == 2 and "--shard_size '1XB' is not a size" in capsys.readouterr().err

    out = tmp_path / "s"
    pack("synthetic", synthetic_root, out)
    pack("synthetic", synthetic_root, tmp_path / "again")  # packing is reproducible, byte for byte
    assert (out / "train-000003.tar").read_bytes() == (tmp_path / "again" / "train-000003.tar").read_bytes()
    with pytest.raises(DataError, match="packed with context_frames=2, but 3"):
        build_dataset("shards", out, context_frames=3)
    with open(out / "train-000001.tar", "r+b") as handle:  # cut short, as a failed copy would
        handle.truncate(1024)
    with pytest.raises(DataError, match="train-000001.tar has 1024 bytes, its manifest says"):
        build_dataset("shards", out)

    # a pack that dies half way (here: an unreadable frame at the 5th sample) leaves no manifest and no partial shard
    from ifrvp_core.data.datasets import WindowDataset

    real_load, calls = WindowDataset.load_frames, {"n": 0}

    def failing_load(self, frames):
        calls["n"] += 1
        if calls["n"] == 5:
            raise DataError(f"cannot decode image (truncated or corrupt): {frames[0]}")
        return real_load(self, frames)

    monkeypatch.setattr(WindowDataset, "load_frames", failing_load)
    code = data_prep_main(["pack", "--dataset", "synthetic", "--root", str(synthetic_root), "--out", str(out), "--shard-size", "20KB"])
    assert code == 2 and "cannot decode image" in capsys.readouterr().err
    assert not (out / "train-index.json").exists() and not list(out.glob(".*"))
    assert (out / "train-000003.tar").is_file()  # the finished shards stay, but without their manifest...
    with pytest.raises(DataError, match="train-index.json.*did not finish"):  # ...the reader refuses them
        build_dataset("shards", str(out / "train-{000000..000003}.tar"))


# ----------------------------------------------------------------------------- training
def test_training_over_shards_runs_and_resumes_exactly(synthetic_root, tmp_path, monkeypatch):
    out = tmp_path / "shards"
    pack("synthetic", synthetic_root, out)
    pack("synthetic", synthetic_root, out, split="test")
    count = len(json.loads((out / "train-index.json").read_text())["shards"])
    pattern = str(out / f"train-{{000000..{count - 1:06d}}}.tar")

    def args(name, **extra):
        values = dict(model_name="IFRNet_T", dataset="shards", data_root=pattern, crop_size=16, batch_size=2, num_workers=0,
                      log_path=tmp_path, run_name=name, log_interval=1, val_samples=1, val_batch_size=1, max_steps=6, seed=3, **extra)
        return [f"--{key}={value}" for key, value in values.items()]

    assert train_main(args("reference")) == 0  # 9 samples / batch 2 = 4 steps per epoch: 6 steps cross an epoch
    summary = json.loads((tmp_path / "reference" / "summary.json").read_text())
    assert summary["iterations"] == 6 and summary["dataset"] == "shards" and summary["final"]["samples"] == 1
    assert summary["teacher_flow"] == "synthetic ground truth"

    from ifrvp_core import train as train_module

    calls = {"n": 0}

    def stop_after_three(self, env):  # what SIGTERM does: finish the step, save latest.pt, leave
        calls["n"] += 1
        if calls["n"] == 3:
            self.signal = 15
        return self.signal is not None

    monkeypatch.setattr(train_module.StopFlag, "should_stop", stop_after_three)
    assert train_main(args("resumed")) == 128 + 15
    monkeypatch.undo()
    trainer = Trainer(TrainConfig.from_args(args("resumed", resume="auto")), Dist())
    assert trainer.iteration == 3 and trainer.steps_per_epoch == 4
    trainer.run()
    reference = torch.load(tmp_path / "reference" / "latest.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "latest.pt", weights_only=True)
    assert resumed["iteration"] == reference["iteration"] == 6
    for key, value in reference["model"].items():
        assert torch.equal(value, resumed["model"][key]), key


# ----------------------------------------------------------------------------- tools
def test_verify_checks_every_shard_and_sample(synthetic_root, tmp_path, capsys):
    out = tmp_path / "s"
    manifest = pack("synthetic", synthetic_root, out)
    capsys.readouterr()
    assert data_prep_main(["verify", "--dataset", "shards", "--root", str(out)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"files checked +9\n", printed) and re.search(rf"groups \(sequences/clips\) +{len(manifest['shards'])}\n", printed)
    with tarfile.open(out / "train-000000.tar") as archive:  # flip bytes inside a PNG: the tar stays the same size
        member = next(m for m in archive.getmembers() if m.name.endswith("target_0.png"))
    with open(out / "train-000000.tar", "r+b") as handle:
        handle.seek(member.offset_data + member.size // 2)
        handle.write(b"\x00" * 16)
    with open(out / "train-000001.tar", "r+b") as handle:
        handle.truncate(512)
    assert data_prep_main(["verify", "--dataset", "shards", "--root", str(out)]) == 1
    report = capsys.readouterr().out
    assert f"[corrupt] {out / 'train-000000.tar'}: cannot decode sample {member.name.split('.')[0]}" in report
    assert f"[corrupt] {out / 'train-000001.tar'}: 512 bytes, its manifest says {manifest['shards'][1]['bytes']}" in report


def test_slurm_script_starts_the_trainer_over_shards_on_two_nodes():
    script = Path(__file__).resolve().parent.parent / "scripts" / "slurm_train.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "#SBATCH --nodes=2" in text and "#SBATCH --ntasks-per-node=1" in text and "#SBATCH --gpus-per-node=" in text
    launch = text[text.index("srun ") :]
    for part in ('torchrun', '--nnodes "$SLURM_NNODES"', "--rdzv_backend c10d", '--rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT"',
                 "-m ifrvp_core.train", "--dataset shards", '--data_root "$SHARDS"', "--resume auto"):
        assert part in launch, part
    train_flags = re.findall(r"--(\w+)", launch[launch.index("-m ifrvp_core.train") :])
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert train_flags and set(train_flags) <= fields, set(train_flags) - fields
