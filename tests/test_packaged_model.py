"""The model that ships in the package: it loads by name, is what the README says, and predicts."""
import torch

from ifrvp_core.checkpoint import DEFAULT_PACKAGED_MODEL, load_file, load_model, packaged_checkpoint_path, packaged_models
from ifrvp_core.motion_prior import prior_prediction


def test_the_packaged_model_ships_small_and_says_where_it_came_from():
    assert DEFAULT_PACKAGED_MODEL in packaged_models()
    path = packaged_checkpoint_path()
    assert path.stat().st_size <= 12 * 1024 * 1024
    checkpoint = load_file(path)
    assert checkpoint["model_name"] == "IFRNet_S" and checkpoint["model_options"]["motion_prior"] == "dis"
    provenance = checkpoint["provenance"]
    assert provenance["command"].startswith("ifrvp train --dataset frames --data_root data/mix/train --model_name IFRNet_S")
    assert provenance["config"]["prior_shift_input"] and checkpoint["model_options"]["prior_shift_input"]
    assert provenance["config"]["max_steps"] == provenance["iteration"] == 1500
    # 1500 steps of the README's real recipe, then twice 1500 more, each from the last one's weights (--init_from)
    assert provenance["config"]["init_from"] and provenance["command"].count(" && ifrvp train ") == 2
    assert "--init_from runs/real/latest.pt" in provenance["command"] and "--init_from runs/packaged/latest.pt" in provenance["command"]
    assert all(value.dtype == torch.float16 for value in checkpoint["model"].values() if value.is_floating_point())


def test_the_packaged_model_loads_by_name_and_predicts_the_next_frame():
    model = load_model(DEFAULT_PACKAGED_MODEL)
    assert model.model_name == "IFRNet_S" and model.motion_prior == "dis"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    generator = torch.Generator().manual_seed(0)
    scene = torch.rand(1, 3, 72, 112, generator=generator)
    frames = torch.stack([scene[..., 4:68, 0:96], scene[..., 4:68, 3:99]], dim=1)  # moving left 3 px per frame
    target = scene[..., 4:68, 6:102]
    prediction = model.predict(frames, t=2.0)
    assert prediction.shape == (1, 3, 64, 96) and torch.isfinite(prediction).all()
    interior = (slice(None), slice(None), slice(8, -8), slice(8, -16))
    copy_error = (frames[:, -1] - target)[interior].abs().mean()
    model_error = (prediction - target)[interior].abs().mean()
    assert model_error < 0.5 * copy_error  # it moves the content, it does not copy the last frame
    # trained: not its untrained twin (the motion prior alone) to the last bit
    assert not torch.equal(prediction, prior_prediction(frames, 2.0))
