"""`--init_from`: a motion-prior model started from official IFRNet weights (or any IFRVP checkpoint)."""
import json

import pytest
import torch

from ifrvp_core import build_model
from ifrvp_core.checkpoint import CheckpointError, init_from_weights, model_checkpoint, save_atomic
from ifrvp_core.train import Dist, Trainer, TrainConfig, main
from ifrvp_core.train.config import ConfigError
from tiny_training import tiny_args


def official_file(tmp_path, name="IFRNet_T", seed=3):
    """A published-network state_dict with non-zero output layers, saved as the official files are (bare)."""
    torch.manual_seed(seed)
    published = build_model(name)
    path = tmp_path / f"{name}_official.pth"
    torch.save(published.state_dict(), path)
    return published, path


def frames(seed=0, height=64, width=96):
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, height, width + 8, generator=generator)
    return torch.stack([base[..., 4 : 4 + width], base[..., 6 : 6 + width]], dim=1)  # moves 2 px per frame


@pytest.mark.parametrize("shift", [False, True])
def test_official_weights_start_a_prior_model_at_the_prior(tmp_path, shift):
    published, path = official_file(tmp_path)
    options = dict(motion_prior="dis", prior_shift_input=shift)
    model = build_model("IFRNet_T", **options)
    report = init_from_weights(model, path)
    assert report["restarted_at_prior"] and report["source"] == str(path)
    own, official = model.state_dict(), published.state_dict()
    assert torch.equal(own["encoder.pyramid1.0.0.weight"], official["encoder.pyramid1.0.0.weight"])
    assert torch.equal(own["decoder2.convblock.1.conv1.0.weight"], official["decoder2.convblock.1.conv1.0.weight"])
    first = own["decoder3.convblock.0.0.weight"]
    if shift:  # the file's weights on the published inputs, zeros on the 2K shift channels (the last inputs)
        assert len(report["widened"]) == 4 and report["copied"] == len(own) - 4
        n = official["decoder3.convblock.0.0.weight"].shape[1]
        assert first.shape[1] == n + 4
        assert torch.equal(first[:, :n], official["decoder3.convblock.0.0.weight"]) and not first[:, n:].any()
    else:
        assert report["widened"] == [] and report["copied"] == len(own)
        assert torch.equal(first, official["decoder3.convblock.0.0.weight"])
    # the output layers restart: flows, mask and residual at zero, the older frame's logit at the prior's
    assert not own["decoder1.convblock.2.weight"].any()
    assert not own["decoder4.convblock.2.weight"][:, :4].any() and own["decoder4.convblock.2.weight"][:, 4:].any()
    # ... so the prediction is the motion prior's, exactly as an untrained model's
    context = frames()
    fresh = build_model("IFRNet_T", **options).eval()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.predict(context, 2.0), fresh.predict(context, 2.0))
        # and the network is not the fresh one: its refined features differ
        assert not torch.equal(model(context, 2.0)["refined_features"][0], fresh(context, 2.0)["refined_features"][0])


def test_a_prior_checkpoint_is_fine_tuned_as_it_is(tmp_path):
    torch.manual_seed(1)
    trained = build_model("IFRNet_T", motion_prior="dis")
    with torch.no_grad():  # a "trained" prior model: non-zero outputs
        trained.decoder1.convblock[-1].weight.normal_(0, 1e-3)
    path = save_atomic(model_checkpoint(trained), tmp_path / "trained.pt")
    model = build_model("IFRNet_T", motion_prior="dis", prior_shift_input=True)
    report = init_from_weights(model, path)
    assert not report["restarted_at_prior"] and len(report["widened"]) == 4
    assert torch.equal(model.decoder1.convblock[-1].weight, trained.decoder1.convblock[-1].weight)
    context = frames(1)
    with torch.no_grad():  # zero shift weights: the same function as the file's network
        torch.testing.assert_close(model.eval().predict(context, 2.0), trained.eval().predict(context, 2.0), rtol=0, atol=1e-6)


def test_another_variant_or_context_is_refused_naming_file_and_keys(tmp_path):
    _, path = official_file(tmp_path, "IFRNet_T")
    with pytest.raises(CheckpointError, match=r"IFRNet_T_official\.pth does not fit IFRNet_S.*shape mismatches.*encoder\.pyramid1"):
        init_from_weights(build_model("IFRNet_S", motion_prior="dis"), path)
    with pytest.raises(CheckpointError, match=r"K=3.*decoder4\.convblock\.0\.0\.weight"):
        init_from_weights(build_model("IFRNet_T", context_frames=3, motion_prior="dis"), path)
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        init_from_weights(build_model("IFRNet_T", motion_prior="dis"), tmp_path / "missing.pth")


def test_config_checks_init_from(tmp_path):
    with pytest.raises(ConfigError, match=r"--init_from: no such file, and no packaged model of that name .*nope\.pth"):
        TrainConfig.from_args(["--init_from", str(tmp_path / "nope.pth")])
    _, path = official_file(tmp_path)
    with pytest.raises(ConfigError, match="--init_from and --resume_path both give the starting weights"):
        TrainConfig.from_args(["--init_from", str(path), "--resume_path", str(path)])
    assert TrainConfig.from_args(["--init_from", "ifrvp-s-real"]).init_from == "ifrvp-s-real"  # a packaged model's name


def test_training_starts_from_the_official_weights(tiny_data, tmp_path, capsys):
    published, path = official_file(tmp_path)
    config = TrainConfig.from_args(tiny_args(tiny_data, tmp_path, "init", max_steps=1, init_from=path, prior_shift_input=True))
    trainer = Trainer(config, Dist())
    weights = trainer.model.state_dict()
    assert torch.equal(weights["encoder.pyramid2.0.0.weight"], published.state_dict()["encoder.pyramid2.0.0.weight"])
    assert not weights["decoder1.convblock.2.weight"].any()
    said = capsys.readouterr().out
    assert f"--init_from: weights from {path} (100 tensors copied, 4 first convs given zero prior-shift channels)" in said
    assert "training starts at the motion prior" in said
    trainer.run()
    assert json.loads((tmp_path / "init" / "config.json").read_text())["init_from"] == str(path)
    assert main(tiny_args(tiny_data, tmp_path, "bad", max_steps=1, model_name="IFRNet_S", init_from=path)) == 1
