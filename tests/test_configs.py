"""Every recipe in configs/ loads, names what a recipe must, and takes one training step on fake data."""
import json
import math
import re
from pathlib import Path

import pytest
import yaml

import fake_datasets as fake
from ifrvp_core.evaluate import get_protocol
from ifrvp_core.train import Dist, TrainConfig, Trainer

REPO = Path(__file__).resolve().parent.parent
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
REQUIRED = ("model_name", "dataset", "protocol", "task", "crop_size", "batch_size", "epochs", "lr_start", "lr_end",
            "loss_charbonnier", "loss_census", "loss_geometry", "loss_distillation")
# the dataset each recipe trains on -> the protocol(s) its checkpoint is scored with
PROTOCOL_DATASETS = {"ucf101": ("davis17", "vimeo90k")}

FAKE = {
    "vimeo90k": lambda root: fake.vimeo_triplet(root, size=(48, 64)),
    "gopro": fake.gopro,
    "cityscapes": lambda root: fake.cityscapes(fake.cityscapes(root, "val", size=(16, 32)), "train",
                                               snippets=(("aachen", "000000", 0, 4),), size=(16, 32)),
    "kitti": lambda root: fake.kitti(root, test_lengths={d: 9 for d in fake.KITTI_TEST_LENGTHS}),
    "ucf101": fake.ucf101,
}


def test_the_published_recipes_ship():
    names = {path.name for path in CONFIGS}
    assert {"vimeo90k_interpolation.yaml", "gopro.yaml", "cityscapes.yaml", "cityscapes_k+1.yaml", "kitti.yaml", "ucf101.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_names_its_recipe_and_is_in_the_readme(path):
    values = yaml.safe_load(path.read_text())
    missing = [key for key in REQUIRED if key not in values]
    assert not missing, f"{path.name} does not name {missing}"
    config = TrainConfig.from_args(["--config", str(path)])  # every key is a TrainConfig field
    assert config.epochs > 0 and config.batch_size > 0 and config.lr_start > config.lr_end > 0
    if config.protocol is not None:
        protocol = get_protocol(config.protocol)
        assert protocol.dataset in (config.dataset, *PROTOCOL_DATASETS.get(config.dataset, ()))
    else:  # only interpolation has no `ifrvp evaluate` protocol
        assert config.task == "interpolate"
    readme = (REPO / "README.md").read_text()
    assert re.search(rf"torchrun --nproc_per_node=N -m ifrvp_core\.train --config \"?configs/{re.escape(path.name)}", readme), \
        f"README does not show how to run {path.name} on N GPUs"


def test_cityscapes_k_plus_1_predicts_frame_k_plus_1():
    config = TrainConfig.from_args(["--config", str(REPO / "configs" / "cityscapes_k+1.yaml")])
    assert (config.context_frames, config.future_frames, config.dataset) == (4, 1, "cityscapes")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_takes_one_training_step(path, tmp_path):
    dataset = yaml.safe_load(path.read_text())["dataset"]
    root = FAKE[dataset](tmp_path / dataset)
    config = TrainConfig.from_args([
        "--config", str(path), "--data_root", str(root), "--max_steps", "1", "--crop_size", "32", "--batch_size", "2",
        "--num_workers", "0", "--val_samples", "0", "--log_interval", "1", "--log_path", str(tmp_path / "runs"),
    ])
    trainer = Trainer(config, Dist())
    summary = trainer.run()
    assert summary["iterations"] == 1 and summary["dataset"] == dataset
    records = [json.loads(line) for line in (trainer.run_dir / "log.jsonl").read_text().splitlines()]
    step = [r for r in records if r["kind"] == "train"]
    assert len(step) == 1 and math.isfinite(step[0]["loss"]) and step[0]["loss"] > 0
    assert step[0]["lr"] == pytest.approx(config.lr_start)
    assert summary["protocol"] == config.protocol
    # the trained model is the recipe's: the file's variant and context frames
    assert trainer.model.model_name == config.model_name and trainer.model.context_frames == config.context_frames
