import collections

import pytest
import torch

from ifrvp_core import build_model
from ifrvp_core.checkpoint import (
    CheckpointError,
    infer_model_config,
    load_checkpoint,
    load_file,
    load_model,
    model_checkpoint,
    save_atomic,
)


def official_file(tmp_path, name="IFRNet_S", prefix=""):
    torch.manual_seed(1)
    model = build_model(name).eval()
    state = collections.OrderedDict((prefix + k, v.clone()) for k, v in model.state_dict().items())
    path = tmp_path / f"{name}_Vimeo90K.pth"
    torch.save(state, path)  # as the published training script saves it
    return model, path


@pytest.mark.parametrize("prefix", ["", "module."])
def test_official_state_dict_loads_and_gives_same_outputs(tmp_path, prefix):
    source, path = official_file(tmp_path, prefix=prefix)
    target = load_checkpoint(build_model("IFRNet_S").eval(), path)
    frames = torch.rand(1, 2, 3, 32, 32)
    assert torch.equal(source.predict(frames, 0.5), target.predict(frames, 0.5))


def test_load_model_infers_variant_from_official_shapes(tmp_path):
    source, path = official_file(tmp_path, "IFRNet_L")
    model = load_model(path)
    assert model.model_name == "IFRNet_L" and model.context_frames == 2 and not model.training
    assert infer_model_config(build_model("IFRNet_ELAN", context_frames=3).state_dict()) == ("IFRNet_ELAN", 3)
    frames = torch.rand(1, 2, 3, 32, 32)
    assert torch.equal(source.predict(frames, 2.0), model.predict(frames, 2.0))


def test_project_checkpoint_round_trip(tmp_path):
    model = build_model("IFRNet_T", context_frames=3)
    path = save_atomic(model_checkpoint(model, epoch=3), tmp_path / "run" / "latest.pt")
    loaded = load_model(path)
    assert loaded.model_name == "IFRNet_T" and loaded.context_frames == 3
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert load_file(path)["epoch"] == 3


def test_wrong_variant_names_mismatched_keys(tmp_path):
    _, path = official_file(tmp_path, "IFRNet_S")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(build_model("IFRNet"), path)
    message = str(info.value)
    assert str(path) in message and "shape mismatches" in message and "encoder.pyramid1.0.0.weight" in message


def test_partial_and_extra_keys_are_named(tmp_path):
    state = build_model("IFRNet_T").state_dict()
    state.pop("decoder1.convblock.2.bias")
    state["decoder9.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(build_model("IFRNet_T"), path)
    message = str(info.value)
    assert "missing keys (1): decoder1.convblock.2.bias" in message
    assert "unexpected keys (1): decoder9.weight" in message


class NotAllowed:
    pass


def test_pickled_objects_are_refused_and_files_are_named(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": build_model("IFRNet_T").state_dict(), "payload": NotAllowed()}, path)
    with pytest.raises(CheckpointError, match="evil.pth.*weights_only"):
        load_file(path)
    truncated = tmp_path / "truncated.pth"
    good = tmp_path / "good.pth"
    torch.save(build_model("IFRNet_T").state_dict(), good)
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated.pth"):
        load_checkpoint(build_model("IFRNet_T"), truncated)
    with pytest.raises(CheckpointError, match="not found: .*missing.pth"):
        load_model(tmp_path / "missing.pth")


def test_save_atomic_keeps_previous_file_when_writing_fails(tmp_path, monkeypatch):
    path = save_atomic({"iteration": torch.tensor(1)}, tmp_path / "latest.pt")

    def broken_save(obj, handle, *args, **kwargs):
        handle.write(b"partial bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_atomic({"iteration": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert load_file(path)["iteration"].item() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]  # no temporary left behind
