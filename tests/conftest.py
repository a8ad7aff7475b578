import os

import pytest
import torch
import torchvision

from ifrvp_core import losses
from ifrvp_core import metrics as M

# Two cores are shared by the whole suite; one intra-op thread per test process avoids oversubscription.
torch.set_num_threads(int(os.environ.get("IFRVP_TEST_THREADS", "1")))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A small synthetic set: 16 training windows (4 clips x 4) and 4 test windows at 48x64."""
    from ifrvp_core.data import ensure_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    return ensure_synthetic(root, progress=False, train_clips=4, test_clips=2, num_frames=6, height=48, width=64)


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


def seed_hub_weights(tmp_path, monkeypatch, features, file_name: str) -> dict:
    """Write a seeded random trunk's weights (`features.*` keys) where torch hub looks for `file_name`."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    state = {f"features.{key}": value for key, value in features.state_dict().items()}
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(state, cache / file_name)
    return state


@pytest.fixture
def seeded_alexnet_weights(tmp_path, monkeypatch):
    """LPIPS's AlexNet trunk from a seeded random AlexNet, placed in a temporary torch hub cache.

    The ImageNet file is not available offline; the LPIPS code path (loading, channel handling) is
    the same with any trunk. Returns the state dict written (`features.*` keys).
    """
    monkeypatch.delenv("IFRVP_ALEXNET_WEIGHTS", raising=False)
    torch.manual_seed(0)
    return seed_hub_weights(tmp_path, monkeypatch, torchvision.models.alexnet(weights=None).features, M.ALEXNET_WEIGHTS_FILE)


@pytest.fixture
def seeded_vgg19_weights(tmp_path, monkeypatch):
    """The perceptual loss's VGG19 trunk from a seeded random VGG19, placed in a temporary torch hub cache.

    The ImageNet file is not available offline; the loss's code path (loading, layers, frozen
    features) is the same with any trunk. Returns the state dict written (`features.*` keys).
    """
    torch.manual_seed(0)
    return seed_hub_weights(tmp_path, monkeypatch, torchvision.models.vgg19(weights=None).features, losses.VGG19_FILE)


@pytest.fixture(autouse=True)
def no_weight_downloads(monkeypatch):
    """Tests stay offline: a developer's IFRVP_ALLOW_DOWNLOAD=1 must not let any test download weights."""
    monkeypatch.delenv("IFRVP_ALLOW_DOWNLOAD", raising=False)
