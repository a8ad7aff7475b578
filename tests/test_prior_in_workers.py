"""The motion prior in the data-loader workers: every reader's `prior_flow`, `flow_region`, and training with it.

Training passes each sample's `prior_flow` to the model, so the main process runs no OpenCV in a
training step; with `flow_region="crop"` (the default) the numbers must be those of the model
computing the prior itself, bit for bit.
"""
import json
from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ifrvp_core.models.ifrnet as ifrnet_module
from data_prep.__main__ import main as data_prep_main
from ifrvp_core import motion_prior
from ifrvp_core.data import build_dataset, make_loader, set_loader_epoch
from ifrvp_core.data.augment import AugmentConfig
from ifrvp_core.data.teacher import DIS_TEACHER_SOURCES
from ifrvp_core.motion_prior import constant_velocity_prior
from ifrvp_core.train import Dist, TrainConfig, Trainer, main as train_main
from ifrvp_core.warp import backward_warp
from tiny_training import tiny_args

SIZE = 40  # square frames, so the transpose augmentation applies
STEP = (2, 1)  # the texture's motion per frame, (x, y) pixels: both axes, so a wrong flow sign shows


def moving_texture(count: int, seed: int, size: int = SIZE, step=STEP) -> list[np.ndarray]:
    """`count` uint8 RGB frames of a smooth random texture moving `step` pixels per frame (DIS finds it)."""
    rng = np.random.default_rng(seed)
    big = size + count * max(step)
    texture = cv2.resize(rng.integers(0, 256, (big // 4, big // 4, 3), dtype=np.uint8), (big, big), interpolation=cv2.INTER_CUBIC)
    top, left = (count * step[1], count * step[0])
    return [np.ascontiguousarray(texture[top - i * step[1]: top - i * step[1] + size, left - i * step[0]: left - i * step[0] + size])
            for i in range(count)]


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory):
    """Two clips of 7 frames (`moving_texture`): 8 training windows, no prepared teacher flow."""
    root = tmp_path_factory.mktemp("frames")
    for n in range(2):
        (root / f"clip{n}").mkdir()
        for i, image in enumerate(moving_texture(7, n)):
            cv2.imwrite(str(root / f"clip{n}" / f"{i:05d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return root


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "drift.mp4"
    with imageio.get_writer(path, fps=10, codec="libx264", quality=10, macro_block_size=1) as writer:
        for image in moving_texture(8, 5):
            writer.append_data(image)
    return path


def first_batch(dataset, batch_size: int = 4, num_workers: int = 0) -> dict:
    loader = make_loader(dataset, batch_size, seed=1, num_workers=num_workers, rank=0, world_size=1)
    set_loader_epoch(loader, 0)
    return next(iter(loader))


def count_dis_calls(monkeypatch) -> list:
    """Count `motion_prior.dis_flow_batch` calls in this process (the prior and the teacher both go through it)."""
    calls, original = [], motion_prior.dis_flow_batch

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(motion_prior, "dis_flow_batch", counting)
    return calls


ALWAYS_REVERSED = AugmentConfig(crop_size=(32, 32), time_reverse=1.0)


# ----------------------------------------------------------------------------- the key, in every reader
@pytest.mark.parametrize("reader", ["synthetic", "frames", "video", "frames_reversed", "interpolation"])
def test_every_reader_gives_the_prior_the_model_computes_from_the_batch(reader, tiny_data, frames_root, video_file):
    """`prior_flow` (B,2K,H,W) == `constant_velocity_prior(batch context, target_times[:, 0])`, bit for bit, augmented."""
    options = dict(augment=True, crop_size=32, seed=3, prior_flow=True)
    if reader == "synthetic":
        dataset = build_dataset("synthetic", tiny_data, "train", future_frames=2, **options)
    elif reader == "frames":
        dataset = build_dataset("frames", frames_root, "train", future_frames=2, teacher_flow="dis", **options)
    elif reader == "video":
        dataset = build_dataset("frames", video_file, "train", **options)
    elif reader == "frames_reversed":  # every sample time-reversed: the prior is that of the reversed context
        dataset = build_dataset("frames", frames_root, "train", context_frames=3, **{**options, "augment": ALWAYS_REVERSED})
    else:  # interpolation with a motion prior: t = 0.5 (1 - 0.5 when reversed)
        dataset = build_dataset("frames", frames_root, "train", task="interpolate", **{**options, "augment": ALWAYS_REVERSED})
    batch = first_batch(dataset)
    k = batch["context"].shape[1]
    assert batch["prior_flow"].shape == (4, 2 * k, 32, 32) and batch["prior_flow"].dtype == torch.float32
    assert torch.equal(batch["prior_flow"], constant_velocity_prior(batch["context"], batch["target_times"][:, 0]))
    assert batch["prior_flow"].abs().amax(dim=(1, 2, 3)).min() > 0.3  # real motion in every sample: not a zero flow
    if batch["target_times"].shape[1] > 1:  # the first target's time, not another one's
        assert not torch.equal(batch["prior_flow"], constant_velocity_prior(batch["context"], batch["target_times"][:, 1]))


def test_shards_give_the_folder_readers_prior(frames_root, tmp_path):
    assert data_prep_main(["pack", "--dataset", "frames", "--root", str(frames_root), "--out", str(tmp_path), "--split", "train",
                           "--shard-size", "40KB"]) == 0
    for region in ("crop", "frame"):
        options = dict(augment=True, crop_size=32, seed=5, prior_flow=True, flow_region=region, teacher_flow="dis")
        folder, shards = build_dataset("frames", frames_root, "train", **options), build_dataset("shards", tmp_path, "train", **options)
        assert shards.teacher_source == folder.teacher_source
        read = {sample["name"]: sample for sample in shards.samples(0)}  # a shard sample is the folder's of the same name
        assert len(read) == len(folder)
        for index in (0, len(folder) - 1):
            a = folder[index]
            b = read[a["name"]]
            assert a.keys() == b.keys() and "prior_flow" in a
            for key in ("context", "prior_flow", "teacher_flow"):
                assert torch.equal(a[key], b[key]), (region, index, key)


def test_no_prior_asked_no_key_and_no_dis(tiny_data, monkeypatch):
    """Models without a motion prior (and interpolation's default) do not pay for one."""
    calls = count_dis_calls(monkeypatch)
    batch = first_batch(build_dataset("synthetic", tiny_data, "train", augment=True, crop_size=32))
    assert "prior_flow" not in batch and calls == []  # synthetic: the teacher is the exact flow, no DIS either
    with_prior = first_batch(build_dataset("synthetic", tiny_data, "train", prior_flow=True))
    assert "prior_flow" in with_prior and len(calls) == 4  # one DIS call per sample: the counter counts
    cases = ((dict(motion_prior="none"), False), (dict(task="interpolate"), False), ({}, True), (dict(motion_prior="dis"), True))
    for extra, wanted in cases:
        assert TrainConfig(**extra).train_data_options()["prior_flow"] is wanted, extra
    assert "prior_flow" not in TrainConfig().val_data_options()  # validation: the model computes it on the full frame
    with pytest.raises(ValueError, match="flow_region must be one of"):
        build_dataset("synthetic", tiny_data, "train", prior_flow=True, flow_region="full")


# ----------------------------------------------------------------------------- flow_region="frame"
def crop_offset(full: torch.Tensor, crop: torch.Tensor) -> tuple[int, int]:
    """(top, left) of `crop` (..., h, w) inside `full` (..., H, W): the one place their pixels agree."""
    h, w = crop.shape[-2:]
    found = [(top, left) for top in range(full.shape[-2] - h + 1) for left in range(full.shape[-1] - w + 1)
             if torch.equal(full[..., top:top + h, left:left + w], crop)]
    assert len(found) == 1, found
    return found[0]


def test_frame_region_prior_and_teacher_are_crops_of_the_full_frame_flows(frames_root):
    crop_only = AugmentConfig(crop_size=(24, 24), channel_reverse=0, vertical_flip=0, horizontal_flip=0, transpose=0, time_reverse=0,
                              resize_2x=0)
    options = dict(prior_flow=True, teacher_flow="dis")
    full = build_dataset("frames", frames_root, "train", **options)  # no augmentation: whole frames
    frame = build_dataset("frames", frames_root, "train", augment=crop_only, flow_region="frame", seed=2, **options)
    crop = build_dataset("frames", frames_root, "train", augment=crop_only, seed=2, **options)
    assert frame.teacher_source == DIS_TEACHER_SOURCES["frame"] and "training crop" in crop.teacher_source
    differs = 0
    for index in range(len(full)):
        whole, sample, on_crop = full[index], frame[index], crop[index]
        assert torch.equal(sample["context"], on_crop["context"])  # the same crop either way: the region moves no random draw
        top, left = crop_offset(whole["context"], sample["context"])
        for key in ("prior_flow", "teacher_flow"):
            assert torch.equal(sample[key], whole[key][:, top:top + 24, left:left + 24]), (index, key)
        differs += not torch.equal(sample["prior_flow"], on_crop["prior_flow"])
    assert differs > 0  # DIS on the crop sees less than on the frame: the option changes the prior


def flip_x(flow):
    return flow.flip(-1) * flow.new_tensor([-1.0, 1.0]).repeat(flow.shape[0] // 2).view(-1, 1, 1)


def flip_y(flow):
    return flow.flip(-2) * flow.new_tensor([1.0, -1.0]).repeat(flow.shape[0] // 2).view(-1, 1, 1)


def swap_axes(flow):
    return flow.transpose(-1, -2).reshape(-1, 2, *flow.shape[-2:]).flip(1).reshape(flow.shape[0], flow.shape[-1], flow.shape[-2])


def double(flow):
    return 2.0 * F.interpolate(flow[None], scale_factor=2.0, mode="bilinear", align_corners=False)[0]


# the augmentation (each with probability 1, no crop) and what it does to a flow, written out by hand
TRANSFORMS = {
    "hflip": (dict(horizontal_flip=1), flip_x),
    "vflip": (dict(vertical_flip=1), flip_y),
    "transpose": (dict(transpose=1), swap_axes),
    "all_three": (dict(vertical_flip=1, horizontal_flip=1, transpose=1), lambda f: swap_axes(flip_x(flip_y(f)))),
    "resize_2x": (dict(resize_2x=1), double),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_frame_region_flows_follow_flips_transposes_and_resizing(name, frames_root):
    probabilities, transform = TRANSFORMS[name]
    off = dict(channel_reverse=0, vertical_flip=0, horizontal_flip=0, transpose=0, time_reverse=0, resize_2x=0)
    config = AugmentConfig(crop_size=None, **{**off, **probabilities})
    full = build_dataset("frames", frames_root, "train", prior_flow=True, teacher_flow="dis")
    frame = build_dataset("frames", frames_root, "train", augment=config, prior_flow=True, teacher_flow="dis", flow_region="frame")
    for index in (0, 5):
        whole, sample = full[index], frame[index]
        for key in ("prior_flow", "teacher_flow"):  # both flows change exactly like this
            assert torch.allclose(sample[key], transform(whole[key]), atol=1e-5, rtol=0), (name, key)
        # and the transformed prior still moves the augmented frames: previous(p + B(p)) ~ newest(p), B = prior[2:4] at t = 2
        context = sample["context"]
        warped = backward_warp(context[0][None], sample["prior_flow"][None, 2:4])[0]
        inner = (slice(None), slice(6, -6), slice(6, -6))  # away from the borders the motion pulls in
        error = (warped - context[1])[inner].abs().mean().item()
        assert error < 0.35 * (context[0] - context[1])[inner].abs().mean().item(), (name, index, error)


# ----------------------------------------------------------------------------- training
def train_steps(trainer: Trainer, steps: int) -> list[float]:
    """`steps` optimiser steps as `Trainer.run` takes them (epoch 0); the losses."""
    trainer.model.train()
    set_loader_epoch(trainer.loader, 0)
    losses = []
    for batch, _ in zip(trainer.loader, range(steps)):
        _, terms, ok = trainer.train_step(batch)
        assert ok
        losses.append(terms["loss"].item())
    return losses


def test_training_with_the_workers_prior_is_bit_identical_to_the_model_computing_it(tiny_data, tmp_path, monkeypatch):
    """3 augmented steps: the prior from the batch (2 loader workers) == the model's own DIS prior (no workers)."""
    args = lambda name, workers: tiny_args(tiny_data, tmp_path, name, max_steps=3, num_workers=workers, val_samples=0)
    old = Trainer(TrainConfig.from_args(args("model_prior", 0)), Dist())
    old.loader.dataset.prior_flow = False  # the path before: batches without the prior, the model runs DIS
    initial = {k: v.clone() for k, v in old.model.state_dict().items()}
    assert "prior_flow" not in next(iter(old.loader))
    old_losses = train_steps(old, 3)

    new = Trainer(TrainConfig.from_args(args("worker_prior", 2)), Dist())
    assert new.loader.dataset.prior_flow and new.loader.num_workers == 2

    def no_dis_here(*args, **kwargs):
        raise AssertionError("the model computed the prior in the training step")

    monkeypatch.setattr(ifrnet_module, "constant_velocity_prior", no_dis_here)  # workers compute it with the data module's own
    new_losses = train_steps(new, 3)
    assert new_losses == old_losses and len(set(new_losses)) == 3
    for key, value in old.model.state_dict().items():
        assert torch.equal(value, new.model.state_dict()[key]), key
    assert max((initial[k] - v).abs().max().item() for k, v in new.model.state_dict().items()) > 1e-6  # the weights moved


def test_training_over_full_frame_flows_runs_and_validates(tiny_data, tmp_path):
    assert train_main(tiny_args(tiny_data, tmp_path, "frame", max_steps=2, flow_region="frame")) == 0
    run = Path(tmp_path) / "frame"
    assert json.loads((run / "config.json").read_text())["flow_region"] == "frame"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final"]["samples"] == 2 and np.isfinite(summary["final"]["psnr"])  # validation computes its prior in the model
    assert summary["teacher_flow"] == "synthetic ground truth"


@pytest.mark.parametrize("workers", [2, 0])
def test_train_records_count_the_main_process_dis_calls(workers, tiny_data, tmp_path):
    """With 2 loader workers the training steps run no DIS in this process (`main_process_dis_calls` 0 in every
    train record, although a validation between the windows runs DIS here); without workers the dataset's
    prior is computed here, one DIS per sample."""
    steps_per_epoch = 8  # 16 training windows, batch 2: the validation after step 8 falls between two records
    name = f"workers{workers}"
    assert train_main(tiny_args(tiny_data, tmp_path, name, max_steps=steps_per_epoch + 2, num_workers=workers,
                                log_interval=2, eval_interval=1)) == 0
    records = [json.loads(line) for line in (Path(tmp_path) / name / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["iteration"] for r in train] == [2, 4, 6, 8, 10] and sum(r["kind"] == "val" for r in records) == 2
    calls = [r["main_process_dis_calls"] for r in train]
    assert calls == ([0] * 5 if workers else [2 * 2] * 5), calls  # 2 steps x batch 2 per record
