"""Pretrained weights (LPIPS AlexNet, perceptual VGG19, RAFT teacher flow): cache paths, messages, the opt-in download.

Offline: torchvision's fetch (`<Weights enum>.get_state_dict`) is replaced by a fake that records the
call and, like the real one, leaves the file in the hub cache; nothing is ever downloaded.
"""
import json
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from data_prep.__main__ import main as data_prep_main
from data_prep.teacher_flow import raft_flow_fn
from ifrvp_core import metrics as M
from ifrvp_core import weights as W
from ifrvp_core.cli import main
from ifrvp_core.losses import VGGPerceptual


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """A torch hub cache without any weights; returns its checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("IFRVP_ALEXNET_WEIGHTS", raising=False)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


class FakeFetch:
    """Stands in for torchvision's weights enum: `get_state_dict` returns `state` (and saves it where
    torchvision would) and counts its calls; `error` makes it fail like a network error."""

    def __init__(self, monkeypatch, state=None, error=None):
        self.calls, self.state, self.error = [], state, error
        fake = self

        class Enum:
            def __init__(self, spec):
                self.spec, self.url = spec, f"https://example.invalid/{spec.file_name}"

            def get_state_dict(self, progress=True):
                fake.calls.append((self.spec, progress))
                if fake.error is not None:
                    raise fake.error
                self.spec.cache_path().parent.mkdir(parents=True, exist_ok=True)
                torch.save(fake.state, self.spec.cache_path())
                return fake.state

        monkeypatch.setattr(W.Pretrained, "weights_enum", lambda spec: Enum(spec))


def _features_state(features) -> dict:
    return {f"features.{key}": value for key, value in features.state_dict().items()}


def test_file_names_are_those_of_torchvisions_weights_enums():
    from torchvision.models.optical_flow import Raft_Large_Weights

    enums = {"alexnet": torchvision.models.AlexNet_Weights.IMAGENET1K_V1, "vgg19": torchvision.models.VGG19_Weights.IMAGENET1K_V1,
             "raft_large": Raft_Large_Weights.C_T_SKHT_V2}
    for key, spec in W.PRETRAINED.items():
        assert spec.file_name == Path(enums[key].url).name, key
        assert spec.weights_enum() is enums[key]
    assert (M.ALEXNET_WEIGHTS_FILE, W.VGG19.file_name) == ("alexnet-owt-7be5be79.pth", "vgg19-dcbb9e9d.pth")


def test_cache_path_follows_torch_hub(empty_hub):
    assert W.VGG19.cache_path() == empty_hub / "vgg19-dcbb9e9d.pth"
    assert W.VGG19.cache_path() == Path(torch.hub.get_dir()) / "checkpoints" / "vgg19-dcbb9e9d.pth"


def test_download_allowed_reads_the_environment(monkeypatch):
    assert W.download_allowed() is False and W.download_allowed(True) is True
    for value, allowed in (("1", True), ("yes", True), ("0", False), ("", False), ("off", False)):
        monkeypatch.setenv("IFRVP_ALLOW_DOWNLOAD", value)
        assert W.download_allowed() is allowed, value
    monkeypatch.setenv("IFRVP_ALLOW_DOWNLOAD", "maybe")
    with pytest.raises(ValueError, match="IFRVP_ALLOW_DOWNLOAD='maybe': use 1 to allow"):
        W.download_allowed()


def test_missing_weights_name_the_cache_path_the_variable_and_the_flag(empty_hub, monkeypatch):
    fetch = FakeFetch(monkeypatch, state={})
    with pytest.raises(W.WeightsNotFoundError) as error:
        W.load_pretrained_state(W.RAFT_LARGE)
    message = str(error.value)
    expected = empty_hub / "raft_large_C_T_SKHT_V2-ff5fadd5.pth"
    assert f"RAFT-large flow weights not found at {expected};" in message
    assert "--download_weights or IFRVP_ALLOW_DOWNLOAD=1" in message and "Raft_Large_Weights.C_T_SKHT_V2" in message
    assert fetch.calls == [] and not expected.exists()
    # an explicit file is never replaced by a download, even when downloads are allowed
    monkeypatch.setenv("IFRVP_ALLOW_DOWNLOAD", "1")
    with pytest.raises(W.WeightsNotFoundError, match=r"not found at .*given\.pth \(--raft_weights\)"):
        W.load_pretrained_state(W.RAFT_LARGE, empty_hub / "given.pth", path_source="--raft_weights")
    assert fetch.calls == []


def test_download_branch_fetches_once_then_reads_the_cache(empty_hub, monkeypatch):
    state = {"w": torch.arange(3.0)}
    fetch = FakeFetch(monkeypatch, state=state)
    assert W.load_pretrained_state(W.VGG19, download=True) is state
    assert fetch.calls == [(W.VGG19, True)]  # with a progress bar
    assert torch.equal(W.load_pretrained_state(W.VGG19)["w"], state["w"])  # now from the cache, no second fetch
    assert len(fetch.calls) == 1


def test_failed_download_names_the_url_and_the_path(empty_hub, monkeypatch):
    FakeFetch(monkeypatch, error=urllib.error.URLError("no route to host"))
    with pytest.raises(W.WeightsDownloadError, match=r"could not download AlexNet ImageNet weights from https://\S+ to .*alexnet-owt"):
        W.load_pretrained_state(W.ALEXNET, download=True)


def test_lpips_without_weights_says_how_to_get_them(empty_hub):
    status = M.lpips_status()
    assert str(empty_hub / M.ALEXNET_WEIGHTS_FILE) in status.reason
    assert "--download_weights or IFRVP_ALLOW_DOWNLOAD=1" in status.reason and "IFRVP_ALEXNET_WEIGHTS" in status.reason


def test_lpips_downloads_its_trunk_when_the_environment_allows(empty_hub, monkeypatch):
    torch.manual_seed(1)
    state = _features_state(torchvision.models.alexnet(weights=None).features)
    fetch = FakeFetch(monkeypatch, state=state)
    monkeypatch.setenv("IFRVP_ALLOW_DOWNLOAD", "1")
    assert M.lpips_status() is None
    model = M.get_lpips_model("cpu")
    assert len(fetch.calls) == 1 and fetch.calls[0][0] is W.ALEXNET
    assert torch.equal(model.net.slice1[0].weight, state["features.0.weight"])


def test_vgg_perceptual_message_and_download(empty_hub, monkeypatch):
    with pytest.raises(FileNotFoundError) as error:
        VGGPerceptual()
    assert str(empty_hub / "vgg19-dcbb9e9d.pth") in str(error.value) and "IFRVP_ALLOW_DOWNLOAD=1" in str(error.value)
    torch.manual_seed(2)
    state = _features_state(torchvision.models.vgg19(weights=None).features)
    fetch = FakeFetch(monkeypatch, state=state)
    monkeypatch.setenv("IFRVP_ALLOW_DOWNLOAD", "1")
    net = VGGPerceptual()
    assert len(fetch.calls) == 1 and torch.equal(net.features[0].weight, state["features.0.weight"])


def test_raft_teacher_flow_message_and_download(empty_hub, monkeypatch, tmp_path, capsys):
    from torchvision.models.optical_flow import raft_large

    # the weights are checked before any frame is listed: a missing data root is not what fails
    assert data_prep_main(["teacher_flow", "--dataset", "synthetic", "--data_root", str(tmp_path / "none"), "--method", "raft"]) == 2
    err = capsys.readouterr().err
    assert str(empty_hub / "raft_large_C_T_SKHT_V2-ff5fadd5.pth") in err and "--download_weights or IFRVP_ALLOW_DOWNLOAD=1" in err
    fetch = FakeFetch(monkeypatch, state=raft_large(weights=None).state_dict())
    assert callable(raft_flow_fn(download=True))
    assert len(fetch.calls) == 1 and fetch.calls[0][0] is W.RAFT_LARGE


def test_evaluate_download_weights_flag_fetches_lpips_weights(empty_hub, monkeypatch, tmp_path, capsys):
    from ifrvp_core.data.synthetic import write_synthetic

    root = tmp_path / "syn"
    write_synthetic(root, "test", 1, num_frames=4, height=48, width=64, seed=3, progress=False)
    torch.manual_seed(4)
    fetch = FakeFetch(monkeypatch, state=_features_state(torchvision.models.alexnet(weights=None).features))
    output = tmp_path / "r.json"
    assert main(["evaluate", "--checkpoint", "none", "--baselines", "--dataset", "synthetic", "--data_root", str(root),
                 "--steps", "1", "--output", str(output), "--no_progress", "--download-weights"]) == 0
    assert len(fetch.calls) == 1 and (empty_hub / M.ALEXNET_WEIGHTS_FILE).is_file()
    data = json.loads(output.read_text())
    assert "lpips" not in data["meta"].get("unavailable", {}) and data["copy_last"]["t+1"]["lpips"] > 0
    capsys.readouterr()


def test_prediction_loss_passes_its_download_permission_to_the_perceptual_term(empty_hub, monkeypatch):
    from ifrvp_core.losses import LossConfig, PredictionLoss

    torch.manual_seed(5)
    fetch = FakeFetch(monkeypatch, state=_features_state(torchvision.models.vgg19(weights=None).features))
    image = torch.rand(1, 3, 32, 32)
    output = {"prediction": image}
    config = LossConfig(charbonnier=0, census=0, geometry=0, distillation=0, perceptual=1.0)
    with pytest.raises(FileNotFoundError, match="IFRVP_ALLOW_DOWNLOAD=1"):
        PredictionLoss(config)(output, image)
    total, terms = PredictionLoss(config, download_weights=True)(output, image)
    assert len(fetch.calls) == 1 and set(terms) == {"perceptual"} and total.item() == 0
