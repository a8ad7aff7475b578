"""The torch Lucas–Kanade flow and the "lucas_kanade" motion prior: accuracy, batching, convention, wiring."""
import pytest
import torch
import torch.nn.functional as F

from ifrvp_core.data import build_dataset, ensure_synthetic
from ifrvp_core.models import build_model
from ifrvp_core.motion_prior import MOTION_PRIORS, constant_velocity_prior, dis_flow_batch, prior_prediction
from ifrvp_core.rollout import standard_methods
from ifrvp_core.torch_flow import lucas_kanade_flow, pyramid_levels
from ifrvp_core.train import Dist, TrainConfig, Trainer
from ifrvp_core.warp import backward_warp
from tiny_training import tiny_args


def smooth_texture(batch=1, height=64, width=96, seed=0) -> torch.Tensor:
    """(batch, 3, H, W) smooth random texture in [0, 1] (bicubic upsampling of 1/4-size noise)."""
    gen = torch.Generator().manual_seed(seed)
    small = torch.rand(batch, 3, height // 4, width // 4, generator=gen)
    return F.interpolate(small, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)


def translated_pair(dx: float, dy: float, batch=1, height=64, width=96, seed=0):
    """(source, destination, flow): source(p) = destination(p + (dx, dy)), sub-pixel, exact up to bilinear sampling."""
    destination = smooth_texture(batch, height, width, seed)
    flow = torch.tensor([dx, dy]).view(1, 2, 1, 1).expand(batch, 2, height, width).contiguous()
    return backward_warp(destination, flow), destination, flow


def interior_epe(flow: torch.Tensor, expected: torch.Tensor, border: int = 12) -> float:
    return (flow - expected).norm(dim=1)[..., border:-border, border:-border].mean().item()


@pytest.mark.parametrize("dx, dy", [(1.3, -0.6), (-2.7, 1.9)])
def test_recovers_a_sub_pixel_translation(dx, dy):
    source, destination, flow = translated_pair(dx, dy)
    estimate = lucas_kanade_flow(source, destination)
    assert estimate.shape == (1, 2, 64, 96) and estimate.dtype == torch.float32
    assert interior_epe(estimate, flow) < 0.1


def test_batched_equals_per_sample():
    source, destination, _ = translated_pair(1.5, 0.5, batch=3)
    destination = destination.roll(shifts=5, dims=0)  # three different pairs
    batched = lucas_kanade_flow(source, destination)
    single = torch.cat([lucas_kanade_flow(source[i : i + 1], destination[i : i + 1]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)


def test_convention_matches_dis():
    source, destination, flow = translated_pair(2.2, -1.4, height=96, width=128, seed=3)
    lk, dis = lucas_kanade_flow(source, destination), dis_flow_batch(source, destination)
    assert interior_epe(lk, dis, border=16) < 0.25  # the same direction and channel order, about the same flow
    assert interior_epe(lk, flow, border=16) < interior_epe(-lk, flow, border=16)


def test_levels_and_bad_inputs():
    assert pyramid_levels(128, 192) == 4 and pyramid_levels(256, 448) == 5 and pyramid_levels(8, 8) == 1
    frames = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="window must be an odd integer"):
        lucas_kanade_flow(frames, frames, window=4)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        lucas_kanade_flow(frames, frames[:, :1])
    with pytest.raises(ValueError, match="'raft'"):
        constant_velocity_prior(frames.unsqueeze(0).expand(1, 2, 3, 16, 16), 2.0, method="raft")
    assert "lucas_kanade" in MOTION_PRIORS


def test_untrained_lucas_kanade_model_predicts_the_prior():
    torch.manual_seed(0)
    model = build_model("IFRNet_T", motion_prior="lucas_kanade").eval()
    assert model.model_options["motion_prior"] == "lucas_kanade"
    source, destination, _ = translated_pair(1.0, -0.5, batch=2, height=48, width=64)
    frames = torch.stack([destination, source], dim=1)  # older, newest
    expected = prior_prediction(frames, 2.0, method="lucas_kanade")
    assert torch.allclose(model.predict(frames, 2.0), expected, atol=1e-5)
    output = model(frames, 2.0)  # forward computes the prior itself
    assert torch.allclose(output["prior_flow"], constant_velocity_prior(frames, 2.0, "lucas_kanade"), atol=1e-6)
    twin = standard_methods(model)["prior_only"]
    assert twin.method == "lucas_kanade" and torch.allclose(twin(frames), expected, atol=1e-6)


def test_lucas_kanade_dataset_has_no_prior_and_training_steps(tmp_path):
    data = ensure_synthetic(tmp_path / "synthetic", progress=False, train_clips=2, test_clips=1, num_frames=6, height=48, width=64)
    config = TrainConfig.from_args(tiny_args(data, tmp_path, "lk", max_steps=1, val_samples=0, motion_prior="lucas_kanade"))
    options = config.train_data_options()
    assert options["prior_flow"] is False and config.model_options()["motion_prior"] == "lucas_kanade"
    sample = build_dataset("synthetic", data, "train", **options)[0]
    assert "prior_flow" not in sample
    trainer = Trainer(config, Dist())
    assert trainer.model.motion_prior == "lucas_kanade"
    batch = next(iter(trainer.loader))
    assert "prior_flow" not in batch
    _, terms, ok = trainer.train_step(batch)
    assert ok and torch.isfinite(terms["loss"])
