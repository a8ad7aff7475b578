import pytest
import torch

from ifrvp_core import build_model
from ifrvp_core.losses import (
    LossConfig,
    boundary_loss,
    PredictionLoss,
    VGGPerceptual,
    census_loss,
    charbonnier_loss,
    flow_distillation_loss,
    frequency_loss,
    geometry_loss,
    laplacian_loss,
    rmse_loss,
)

IMAGE_LOSSES = {
    "charbonnier": charbonnier_loss,
    "census": census_loss,
    "laplacian": laplacian_loss,
    "frequency": frequency_loss,
}


def images(seed=0, shape=(2, 3, 32, 40)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g), torch.rand(shape, generator=g)


@pytest.mark.parametrize("name", sorted(IMAGE_LOSSES))
def test_image_losses_zero_on_identical_positive_otherwise_with_gradient(name):
    loss = IMAGE_LOSSES[name]
    a, b = images()
    assert loss(a, a.clone()).item() == pytest.approx(0.0, abs=1e-7)
    pred = a.clone().requires_grad_()
    value = loss(pred, b)
    assert value.item() > 1e-3
    value.backward()
    assert pred.grad.abs().sum() > 0


def test_perceptual_zero_on_identical_positive_otherwise_with_gradient(seeded_vgg19_weights):
    net = VGGPerceptual()
    assert torch.equal(net.features[0].weight, seeded_vgg19_weights["features.0.weight"])
    a, b = images(shape=(1, 3, 32, 32))
    assert net(a, a.clone()).item() == 0.0
    pred = a.clone().requires_grad_()
    value = net(pred, b)
    value.backward()
    assert value.item() > 0 and pred.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in net.parameters())


def test_census_ignores_brightness_offset_more_than_charbonnier():
    a, _ = images()
    brighter = (a + 0.2).clamp(0, 1)
    shifted = torch.roll(a, 3, dims=-1)
    # a global offset barely changes local structure; a shift changes it a lot
    assert census_loss(brighter, a) < 0.2 * census_loss(shifted, a)
    assert charbonnier_loss(brighter, a) > 0.5 * charbonnier_loss(shifted, a)


@pytest.mark.parametrize("k", [2, 3])
def test_geometry_and_distillation_on_model_output(k):
    torch.manual_seed(0)
    model = build_model("IFRNet_T", context_frames=k)
    frames, target = torch.rand(1, k, 3, 32, 32), torch.rand(1, 3, 32, 32)
    out = model(frames, 2.0, target=target)
    geo = geometry_loss(out["refined_features"], out["target_features"])
    teacher = torch.randn(1, 2 * k, 32, 32) * 2
    dis = flow_distillation_loss(out["flows"], teacher)
    assert geo.item() > 0 and dis.item() > 0
    (geo + dis).backward()
    assert model.decoder2.convblock[2].weight.grad.abs().sum() > 0  # the finest decoder these terms see
    assert model.decoder1.convblock[2].weight.grad is None  # decoder1 only feeds the image terms
    assert model.decoder4.convblock[0][0].weight.grad.abs().sum() > 0
    feats = [f.detach() for f in out["target_features"]]
    assert geometry_loss(feats, feats).item() == 0.0


def test_distillation_zero_when_flows_match_teacher():
    teacher = torch.randn(2, 4, 32, 32)
    # coarse levels equal to the teacher downsampled exactly (constant flow keeps resizing exact)
    const = torch.full((2, 4, 32, 32), 1.5)
    flows = [const] + [const[..., :: 2**j, :: 2**j] / 2**j for j in (1, 2, 3)]
    assert flow_distillation_loss(flows, const).item() == pytest.approx(0.0, abs=1e-6)
    assert flow_distillation_loss(flows, teacher).item() > 0


def test_prediction_loss_total_is_weighted_sum_and_skips_inactive_terms(seeded_vgg19_weights):
    torch.manual_seed(0)
    model = build_model("IFRNet_T")
    frames, target = torch.rand(2, 2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    out = model(frames, 2.0, target=target)
    config = LossConfig(laplacian=0.5, frequency=0.25, perceptual=0.1)
    total, terms = PredictionLoss(config)(out, target, teacher_flow=torch.randn(2, 4, 32, 32))
    assert set(terms) == {"charbonnier", "census", "geometry", "distillation", "laplacian", "frequency", "perceptual"}
    weights = config.to_dict()
    expected = sum(weights[name] * value for name, value in terms.items())
    assert torch.allclose(total.detach(), expected, rtol=1e-5)
    _, default_terms = PredictionLoss()(out, target)  # no teacher flow: no distillation
    assert set(default_terms) == {"charbonnier", "census", "geometry"}
    total.backward()


def test_boundary_loss_weighs_only_where_the_prior_is_sampled_off():
    prediction, target = images(4, (1, 3, 24, 32))
    uniform = torch.zeros(1, 4, 24, 32)
    uniform[:, 0::2] = 3.0  # every pixel moves 3 px: the prior's shift is zero everywhere
    assert boundary_loss(prediction, target, uniform).item() == 0.0
    step = uniform.clone()
    step[:, :, :, 16:] = 0.0  # the left half moves, the right half does not: a boundary at x = 16
    value = boundary_loss(prediction.clone().requires_grad_(), target, step)
    assert value.item() > 0
    # the weight is min(|shift| / 1 px, 1): 1 on the three columns fetched across the boundary, 0 elsewhere
    charbonnier = torch.sqrt((prediction - target) ** 2 + 1e-6) - 1e-3
    columns = charbonnier.mean(dim=(0, 1, 2))
    assert value.item() == pytest.approx(columns[13:16].sum().item() / 32, rel=1e-4)
    model = build_model("IFRNet_T", motion_prior="dis")
    frames = torch.rand(1, 2, 3, 24, 32)
    out = model(frames, 2.0, prior_flow=step)
    _, terms = PredictionLoss(LossConfig(boundary=2.0))(out, target)
    assert "boundary" in terms and terms["boundary"].item() == pytest.approx(boundary_loss(out["prediction"], target, step).item())
    _, terms = PredictionLoss(LossConfig(boundary=2.0))(build_model("IFRNet_T")(frames, 2.0), target)
    assert "boundary" not in terms  # no prior, no boundaries (the trainer refuses this combination)


def test_missing_vgg_weights_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="VGG19.*nowhere.pth"):
        VGGPerceptual(weights_path=str(tmp_path / "nowhere.pth"))


def test_vgg_weights_load_from_given_path(tmp_path):
    from torchvision.models import vgg19

    torch.manual_seed(3)
    state = vgg19(weights=None).state_dict()
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    net = VGGPerceptual(weights_path=str(path))
    assert torch.equal(net.features[0].weight, state["features.0.weight"])


def test_loss_config_round_trip_and_unknown_keys():
    config = LossConfig(laplacian=0.3)
    assert LossConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown loss config keys: \\['censsus'\\]"):
        LossConfig.from_dict({"censsus": 1.0})


def test_rmse_loss_is_each_samples_root_mean_square_error_and_seeks_the_mean():
    prediction, target = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    assert rmse_loss(prediction, target).item() == 0.0
    target[0] = 0.3  # sample 0 is off by 0.3 everywhere, sample 1 by 0.1 on half of its pixels
    target[1, :, :2] = 0.1
    expected = ((0.3 ** 2 + 1e-8) ** 0.5 + (0.1 ** 2 / 2 + 1e-8) ** 0.5) / 2 - 1e-4  # sqrt(mse + eps) - sqrt(eps)
    assert rmse_loss(prediction, target).item() == pytest.approx(expected, abs=1e-6)
    # a target whose pixels are 0 or 1 half and half, predicted by one grey level c: inside a sample the
    # errors are squared before they are averaged, so RMSE is lowest at the mean (0.5); Charbonnier is flat
    half = torch.zeros(1, 3, 4, 4)
    half[..., :2] = 1.0
    rmse = {c: rmse_loss(torch.full_like(half, c), half).item() for c in (0.0, 0.25, 0.5)}
    assert rmse[0.5] < rmse[0.25] < rmse[0.0] and rmse[0.5] == pytest.approx(0.5, abs=1e-3)
    charbonnier = {c: charbonnier_loss(torch.full_like(half, c), half).item() for c in (0.0, 0.25, 0.5)}
    assert max(charbonnier.values()) - min(charbonnier.values()) < 1e-3
    _, terms = PredictionLoss(LossConfig(charbonnier=0.0, rmse=1.0))({"prediction": prediction}, target)
    assert set(terms) == {"rmse", "census"} and terms["rmse"].item() == pytest.approx(expected, abs=1e-6)
