import pytest
import torch
import torch.nn.functional as F

from ifrvp_core import build_model, list_models
from ifrvp_core.warp import backward_warp

PUBLISHED_PARAMETERS = {"IFRNet_L": 19_699_460, "IFRNet": 4_959_692, "IFRNet_S": 2_803_610}
# New in this project (measured and recorded in the README): regressions are caught here.
PROJECT_PARAMETERS = {"IFRNet_T": 1_258_304, "IFRNet_ELAN": 2_616_012}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_all_variants():
    assert set(list_models()) == {"IFRNet", "IFRNet_L", "IFRNet_S", "IFRNet_T", "IFRNet_ELAN"}
    with pytest.raises(ValueError, match="available: IFRNet"):
        build_model("IFRNet_XL")
    assert build_model("ifrnet_s").model_name == "IFRNet_S"


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_published_parameter_counts(name):
    assert n_params(build_model(name)) == PUBLISHED_PARAMETERS[name]


@pytest.mark.parametrize("name", sorted(PROJECT_PARAMETERS))
def test_new_variant_parameter_counts(name):
    assert n_params(build_model(name)) == PROJECT_PARAMETERS[name]


@pytest.mark.parametrize("name", ["IFRNet", "IFRNet_L", "IFRNet_S", "IFRNet_T", "IFRNet_ELAN"])
@pytest.mark.parametrize("k", [2, 3])
def test_shapes_every_variant_and_k(name, k):
    torch.manual_seed(0)
    model = build_model(name, context_frames=k)
    b, h, w = 2, 36, 52  # not multiples of 16
    frames, target = torch.rand(b, k, 3, h, w), torch.rand(b, 3, h, w)
    out = model(frames, torch.tensor([0.5, 2.0]), target=target)
    assert out["prediction"].shape == (b, 3, h, w)
    assert out["merged"].shape == (b, 3, h, w) and out["residual"].shape == (b, 3, h, w)
    assert out["warped"].shape == (b, k, 3, h, w)
    assert out["mask"].shape == (b, k, h, w)
    assert torch.allclose(out["mask"].sum(1), torch.ones(b, h, w), atol=1e-5)
    flows = out["flows"]
    assert [f.shape[1] for f in flows] == [2 * k] * 4
    assert flows[0].shape[-2:] == (h, w)
    assert [f.shape[-2:] for f in flows[1:]] == [(24, 32), (12, 16), (6, 8)]  # padded 48x64 network size
    c1, c2, c3, _ = model.model_options["widths"]
    assert [f.shape[1] for f in out["refined_features"]] == [c1, c2, c3]
    assert [f.shape for f in out["refined_features"]] == [f.shape for f in out["target_features"]]
    assert 0.0 <= out["prediction"].min() and out["prediction"].max() <= 1.0


@pytest.mark.parametrize("t", [0.25, 0.5, 0.75, 1.5, 2.0, 3.0])
def test_predict_any_time_and_odd_size(t):
    torch.manual_seed(0)
    model = build_model("IFRNet_T").eval()
    frames = torch.rand(1, 2, 3, 33, 47)
    pred = model.predict(frames, t)
    assert pred.shape == (1, 3, 33, 47) and not pred.requires_grad
    with torch.no_grad():
        assert torch.allclose(pred, model(frames, t)["prediction"], atol=1e-6)


def test_time_changes_the_prediction():
    torch.manual_seed(0)
    model = build_model("IFRNet_T").eval()
    frames = torch.rand(1, 2, 3, 32, 32)
    assert not torch.allclose(model.predict(frames, 0.5), model.predict(frames, 2.0))


def test_batched_time_equals_per_sample_time():
    torch.manual_seed(0)
    model = build_model("IFRNet_T").eval()
    frames = torch.rand(2, 2, 3, 32, 48)
    together = model.predict(frames, torch.tensor([0.5, 2.0]))
    assert torch.allclose(together[0], model.predict(frames[:1], 0.5)[0], atol=1e-5)
    assert torch.allclose(together[1], model.predict(frames[1:], 2.0)[0], atol=1e-5)
    with pytest.raises(ValueError, match="3 values for a batch of 2"):
        model.predict(frames, torch.tensor([0.5, 1.0, 2.0]))


def test_scale_factor_runs_smaller_network_and_restores_size():
    torch.manual_seed(0)
    model = build_model("IFRNet_T").eval()
    frames = torch.rand(1, 2, 3, 64, 96)
    with torch.no_grad():
        out = model(frames, 2.0, scale_factor=0.5)
    assert out["prediction"].shape == (1, 3, 64, 96)
    assert out["flows"][1].shape[-2:] == (16, 24)  # network ran at 32x48
    identical = torch.rand(1, 1, 3, 64, 96).expand(1, 2, 3, 64, 96)
    assert model.predict(identical, 2.0, scale_factor=0.5).shape == (1, 3, 64, 96)


def test_wrong_inputs_raise_clear_errors():
    model = build_model("IFRNet_T")
    with pytest.raises(ValueError, match="built for 2 context frames, got 3"):
        model(torch.rand(1, 3, 3, 32, 32), 2.0)
    with pytest.raises(ValueError, match=r"\(B, K, 3, H, W\)"):
        model(torch.rand(1, 3, 32, 32), 2.0)
    with pytest.raises(ValueError, match="context_frames must be >= 2"):
        build_model("IFRNet_T", context_frames=1)


@pytest.mark.parametrize("name", ["IFRNet_T", "IFRNet_ELAN"])
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = build_model(name, context_frames=3)
    frames, target = torch.rand(1, 3, 3, 40, 56), torch.rand(1, 3, 40, 56)
    out = model(frames, 2.0, target=target)
    loss = (out["prediction"] - target).abs().mean() + sum(f.abs().mean() for f in out["refined_features"])
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, no_grad


def published_two_frame_forward(model, img0, img1, embt):
    """IFRNet's published two-frame inference, written out literally (image sides % 16 == 0)."""
    mean_ = torch.cat([img0, img1], 2).mean(1, keepdim=True).mean(2, keepdim=True).mean(3, keepdim=True)
    img0, img1 = img0 - mean_, img1 - mean_
    f0_1, f0_2, f0_3, f0_4 = model.encoder(img0)
    f1_1, f1_2, f1_3, f1_4 = model.encoder(img1)
    up = lambda x: F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    out4 = model.decoder4(torch.cat([f0_4, f1_4, embt.repeat(1, 1, *f0_4.shape[-2:])], 1))
    flow0, flow1, ft = out4[:, 0:2], out4[:, 2:4], out4[:, 4:]
    for dec, f0, f1 in ((model.decoder3, f0_3, f1_3), (model.decoder2, f0_2, f1_2), (model.decoder1, f0_1, f1_1)):
        out = dec(torch.cat([ft, backward_warp(f0, flow0), backward_warp(f1, flow1), flow0, flow1], 1))
        flow0, flow1, ft = out[:, 0:2] + 2.0 * up(flow0), out[:, 2:4] + 2.0 * up(flow1), out[:, 4:]
    mask, res = torch.sigmoid(out[:, 4:5]), out[:, 5:]
    merge = mask * backward_warp(img0, flow0) + (1 - mask) * backward_warp(img1, flow1) + mean_
    return torch.clamp(merge + res, 0, 1)


@pytest.mark.parametrize("t", [0.5, 2.0])
def test_two_frame_layout_is_the_published_one(t):
    torch.manual_seed(0)
    model = build_model("IFRNet_S").eval()
    img0, img1 = torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        ref = published_two_frame_forward(model, img0, img1, torch.full((2, 1, 1, 1), t))
        ours = model(torch.stack([img0, img1], 1), t)["prediction"]
    assert torch.allclose(ours, ref, atol=1e-5)


def official_key_names(decoder_levels=(4, 3, 2, 1)):
    keys = set()
    for i in range(1, 5):
        for j in (0, 1):
            keys |= {f"encoder.pyramid{i}.{j}.0.weight", f"encoder.pyramid{i}.{j}.0.bias", f"encoder.pyramid{i}.{j}.1.weight"}
    for level in decoder_levels:
        p = f"decoder{level}.convblock"
        keys |= {f"{p}.0.0.weight", f"{p}.0.0.bias", f"{p}.0.1.weight"}
        for c in range(1, 5):
            keys |= {f"{p}.1.conv{c}.0.weight", f"{p}.1.conv{c}.0.bias", f"{p}.1.conv{c}.1.weight"}
        keys |= {f"{p}.1.conv5.weight", f"{p}.1.conv5.bias", f"{p}.1.prelu.weight", f"{p}.2.weight", f"{p}.2.bias"}
    return keys


@pytest.mark.parametrize("name", ["IFRNet", "IFRNet_L", "IFRNet_S"])
def test_state_dict_uses_official_key_names(name):
    assert set(build_model(name).state_dict()) == official_key_names()


def test_prepare_for_inference_keeps_results():
    from ifrvp_core.models import prepare_for_inference

    torch.manual_seed(0)
    model = build_model("IFRNet_T").eval()
    frames = torch.rand(1, 2, 3, 48, 64)
    reference = model.predict(frames, 2.0)
    fast = prepare_for_inference(build_model("IFRNet_T"), channels_last=True)
    fast.load_state_dict(model.state_dict())
    assert torch.allclose(fast.predict(frames, 2.0), reference, atol=1e-5)
