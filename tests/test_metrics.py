"""Metrics against their references: scikit-image (PSNR, SSIM), pytorch-msssim (MS-SSIM), lpips."""
import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ifrvp_core import metrics as M
from ifrvp_core.metric_accumulator import MetricAccumulator


def _to_numpy(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).double().numpy()


def _image_pairs(height=48, width=64):
    """(name, prediction (B,3,H,W), target (B,3,H,W)) for random and structured content."""
    gen = torch.Generator().manual_seed(1)
    random_a = torch.rand(2, 3, height, width, generator=gen)
    random_b = torch.rand(2, 3, height, width, generator=gen)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    gradient = torch.stack([xs, ys, (xs + ys) / 2]).unsqueeze(0)
    gradient_shifted = torch.stack([ys, xs, 1 - (xs + ys) / 2]).unsqueeze(0)
    checker = ((torch.arange(height).view(-1, 1) // 4 + torch.arange(width).view(1, -1) // 4) % 2).float()
    checker = checker.expand(3, -1, -1).unsqueeze(0)
    checker_soft = torch.nn.functional.avg_pool2d(checker, 3, 1, 1, count_include_pad=False) * 0.8 + 0.1
    # A real-ish pair: a smooth texture and a blurred + noisy version of it.
    texture = torch.nn.functional.interpolate(torch.rand(1, 3, height // 4, width // 4, generator=gen), size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)
    degraded = (torch.nn.functional.avg_pool2d(texture, 5, 1, 2, count_include_pad=False) + 0.03 * torch.randn(texture.shape, generator=gen)).clamp(0, 1)
    return [
        ("random", random_a, random_b),
        ("random_vs_noisy", random_a, (random_a + 0.05 * torch.randn(random_a.shape, generator=gen)).clamp(0, 1)),
        ("gradients", gradient, gradient_shifted),
        ("checkerboard", checker, checker_soft),
        ("blur_noise", degraded, texture),
    ]


@pytest.mark.parametrize("name, prediction, target", _image_pairs(), ids=[p[0] for p in _image_pairs()])
def test_psnr_and_ssim_match_scikit_image(name, prediction, target):
    psnr, ssim = M.psnr(prediction, target), M.ssim(prediction, target)
    assert psnr.shape == ssim.shape == (prediction.shape[0],)
    for i in range(prediction.shape[0]):
        a, b = _to_numpy(prediction[i]), _to_numpy(target[i])
        expected_psnr = peak_signal_noise_ratio(b, a, data_range=1)
        expected_ssim = structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=2
        )
        assert abs(psnr[i].item() - expected_psnr) < 1e-4
        assert abs(ssim[i].item() - expected_ssim) < 1e-4


def test_ms_ssim_matches_pytorch_msssim_at_full_size():
    import pytorch_msssim

    gen = torch.Generator().manual_seed(2)
    target = torch.nn.functional.interpolate(torch.rand(2, 3, 22, 24, generator=gen), size=(176, 192), mode="bilinear", align_corners=False)
    prediction = (target + 0.08 * torch.randn(target.shape, generator=gen)).clamp(0, 1)
    value = M.ms_ssim(prediction, target)
    expected = pytorch_msssim.ms_ssim(prediction, target, data_range=1.0, size_average=False)
    assert M.ms_ssim_scales(176, 192) == 5
    assert torch.allclose(value, expected.float(), atol=1e-3)
    assert 0.3 < value.min() and value.max() < 0.999  # a real, non-degenerate comparison


def test_ms_ssim_fewer_scales_for_small_images():
    from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

    gen = torch.Generator().manual_seed(3)
    target = torch.rand(1, 3, 64, 96, generator=gen)
    prediction = (target + 0.1 * torch.randn(target.shape, generator=gen)).clamp(0, 1)
    assert [M.ms_ssim_scales(*size) for size in [(64, 96), (160, 300), (161, 161), (20, 20), (10, 40)]] == [3, 4, 5, 1, 0]

    # Hand-built 3-scale MS-SSIM from pytorch-msssim's per-scale terms, weights renormalised.
    weights = torch.tensor(M.MS_SSIM_WEIGHTS[:3], dtype=torch.float64)
    weights = weights / weights.sum()
    window = _fspecial_gauss_1d(11, 1.5).double().repeat(3, 1, 1, 1)
    x, y, terms = prediction.double(), target.double(), []
    for level in range(3):
        ssim_c, cs_c = _ssim(x, y, data_range=1.0, win=window, size_average=False, K=(0.01, 0.03))
        terms.append(torch.relu(cs_c if level < 2 else ssim_c))
        x, y = torch.nn.functional.avg_pool2d(x, 2), torch.nn.functional.avg_pool2d(y, 2)
    expected = (terms[0] ** weights[0] * terms[1] ** weights[1] * terms[2] ** weights[2]).mean(dim=1)
    assert torch.allclose(M.ms_ssim(prediction, target).double(), expected, atol=1e-6)

    with pytest.raises(ValueError, match="160"):
        M.ms_ssim(prediction, target, allow_fewer_scales=False)
    with pytest.raises(ValueError, match="at least 11"):
        M.ms_ssim(prediction[..., :8, :8], target[..., :8, :8])


def test_identical_images_and_zero_flow_error():
    image = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(4))
    assert torch.isinf(M.psnr(image, image)).all()
    assert torch.allclose(M.ssim(image, image), torch.ones(2), atol=1e-6)
    assert torch.allclose(M.ms_ssim(image, image), torch.ones(2), atol=1e-6)
    flow = torch.randn(2, 4, 40, 56)
    assert torch.equal(M.epe(flow, flow), torch.zeros(2))


def test_epe_values_and_valid_mask():
    gt = torch.zeros(2, 4, 6, 8)
    flow = gt.clone()
    flow[:, 0], flow[:, 1] = 3.0, 4.0  # field 0 off by (3, 4): error 5 px; field 1 exact
    assert torch.allclose(M.epe(flow, gt), torch.full((2,), 2.5))
    valid = torch.zeros(2, 2, 6, 8)
    valid[0, 0] = 1  # sample 0: only field 0 counts -> 5
    valid[1, 1, :3] = 1  # sample 1: only (exact) field 1 counts -> 0
    assert torch.allclose(M.epe(flow, gt, valid), torch.tensor([5.0, 0.0]))
    assert torch.isnan(M.epe(flow, gt, torch.zeros(2, 6, 8))).all()
    with pytest.raises(ValueError, match=r"flow and gt shapes differ.*\(2, 4, 6, 8\).*\(2, 2, 6, 8\)"):
        M.epe(flow, gt[:, :2])
    with pytest.raises(ValueError, match="valid must be"):
        M.epe(flow, gt, torch.ones(2, 3, 6, 8))


def test_bad_inputs_raise_clear_errors():
    image = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"shapes differ: prediction \(1, 3, 32, 32\) vs target \(1, 3, 32, 16\)"):
        M.psnr(image, image[..., :16])
    with pytest.raises(ValueError, match=r"target must have 3 channels.*\(1, 1, 32, 32\)"):
        M.ssim(image, image[:, :1])
    with pytest.raises(ValueError, match=r"prediction values must be in \[0, 1\]; got min 0, max 255"):
        M.psnr(image * 0 + torch.linspace(0, 255, 32), image)
    with pytest.raises(ValueError, match="target values must be in"):
        M.ms_ssim(image, image * 2 - 1)
    with pytest.raises(ValueError, match="prediction must be a float tensor.*uint8"):
        M.psnr((image * 255).to(torch.uint8), image)
    with pytest.raises(ValueError, match=r"prediction must be \(B, C, H, W\)"):
        M.ssim(image[0], image[0])
    # Rounding noise just outside [0, 1] is tolerated.
    assert torch.isfinite(M.psnr((image + 5e-4).clamp(max=1.0005), image)).all()


def test_lpips_unavailable_without_alexnet_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.delenv("IFRVP_ALEXNET_WEIGHTS", raising=False)

    def no_download(*args, **kwargs):
        raise AssertionError("LPIPS must never download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    status = M.lpips_status()
    assert isinstance(status, M.MetricUnavailable) and not status
    assert "alexnet-owt-7be5be79.pth" in status.reason and str(tmp_path / "empty_torch_home") in status.reason
    assert str(status).startswith("n/a (AlexNet ImageNet weights not found")
    image = torch.rand(1, 3, 32, 32)
    with pytest.raises(M.MetricUnavailableError) as error:
        M.lpips(image, image)
    assert error.value.status == status


def test_lpips_loads_alexnet_weights_from_hub_cache(seeded_alexnet_weights, tmp_path):
    import lpips as lpips_package

    state = seeded_alexnet_weights
    assert M.lpips_status() is None

    model = M.get_lpips_model("cpu")
    assert torch.equal(model.net.slice1[0].weight, state["features.0.weight"])
    assert torch.equal(getattr(model.net.slice5, "10").bias, state["features.10.bias"])
    shipped = torch.load(f"{lpips_package.__path__[0]}/weights/v0.1/alex.pth", map_location="cpu", weights_only=True)
    assert torch.equal(model.lin0.model[1].weight, shipped["lin0.model.1.weight"])

    gen = torch.Generator().manual_seed(5)
    a, b = torch.rand(2, 3, 64, 64, generator=gen), torch.rand(2, 3, 64, 64, generator=gen)
    distance = M.lpips(a, b)
    assert distance.shape == (2,) and (distance > 0).all()
    assert torch.allclose(M.lpips(a, a), torch.zeros(2), atol=1e-6)
    # Same numbers as the lpips package's own forward with [-1, 1] inputs.
    assert torch.allclose(distance, model(a * 2 - 1, b * 2 - 1).flatten(), atol=1e-6)

    broken = tmp_path / "broken.pth"
    torch.save({"classifier.1.weight": torch.zeros(1)}, broken)
    with pytest.raises(M.MetricUnavailableError, match="not a torchvision AlexNet state_dict"):
        M.lpips(a, b, weights_path=broken)


def test_accumulator_over_batches_equals_one_shot_mean():
    gen = torch.Generator().manual_seed(6)
    scores = torch.rand(23, generator=gen) * 40
    accumulator = MetricAccumulator()
    for chunk in torch.split(scores, [5, 1, 7, 10]):
        accumulator.update("t+1", "psnr", chunk)
        accumulator.update("t+2", "psnr", chunk / 2)
    accumulator.update("t+1", "epe", torch.tensor([1.0, float("nan"), 3.0]))
    means = accumulator.compute()
    assert math.isclose(means["t+1"]["psnr"], scores.double().mean().item(), rel_tol=1e-12)
    assert math.isclose(means["t+2"]["psnr"], scores.double().mean().item() / 2, rel_tol=1e-12)
    assert means["t+1"]["epe"] == 2.0  # NaN (no valid pixel) is not counted
    assert accumulator.counts()["t+1"] == {"epe": 2, "psnr": 23}
    assert list(means) == ["t+1", "t+2"]
    labels = MetricAccumulator()
    for step in ("t+2", "t+10", "t+1"):
        labels.update(step, "psnr", [1.0])
    assert list(labels.compute()) == ["t+2", "t+10", "t+1"]  # labels in the order first scored, never parsed
    assert M.MetricAccumulator is MetricAccumulator  # still importable from metrics


def _ddp_worker(rank, world_size, init_file, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    accumulator = MetricAccumulator()
    # Rank 0 sees 3 samples, rank 1 sees 1; only rank 1 has an EPE score.
    values = torch.tensor([10.0, 20.0, 30.0]) if rank == 0 else torch.tensor([60.0])
    accumulator.update("t+1", "psnr", values)
    if rank == 1:
        accumulator.update("t+1", "epe", torch.tensor([4.0]))
    torch.save(accumulator.compute(), f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_accumulator_all_reduces_across_gloo_ranks(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        means = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert means == {"t+1": {"epe": 4.0, "psnr": 30.0}}  # (10+20+30+60)/4


def test_published_channel_order_changes_lpips_only(seeded_alexnet_weights):
    """What `--bgr-like-published` changes: PSNR, SSIM and MS-SSIM average per-channel scores and
    are invariant to the channel order; LPIPS (AlexNet) is not. The trunk here is a seeded random
    AlexNet (the ImageNet file is not available offline); any trunk mixes channels unequally."""
    gen = torch.Generator().manual_seed(3)
    target = torch.rand(2, 3, 176, 192, generator=gen)  # > 160 px: the 5-scale pytorch-msssim path
    prediction = (target + 0.08 * torch.randn(target.shape, generator=gen)).clamp(0, 1)
    prediction[:, 0] *= 0.8  # colour error in one channel, so the channels differ
    bgr_prediction, bgr_target = M.to_published_channel_order(prediction), M.to_published_channel_order(target)
    assert torch.equal(bgr_prediction[:, 0], prediction[:, 2]) and torch.equal(bgr_prediction[:, 2], prediction[:, 0])
    assert torch.equal(M.psnr(bgr_prediction, bgr_target), M.psnr(prediction, target))
    assert torch.allclose(M.ssim(bgr_prediction, bgr_target), M.ssim(prediction, target), atol=1e-6)
    assert torch.allclose(M.ms_ssim(bgr_prediction, bgr_target), M.ms_ssim(prediction, target), atol=1e-6)
    small = (slice(None), slice(None), slice(0, 64), slice(0, 96))  # fewer-scale path too
    assert torch.allclose(M.ms_ssim(bgr_prediction[small], bgr_target[small]), M.ms_ssim(prediction[small], target[small]), atol=1e-6)
    rgb_lpips, bgr_lpips = M.lpips(prediction, target), M.lpips(bgr_prediction, bgr_target)
    assert ((rgb_lpips - bgr_lpips).abs() > 1e-4).all(), (rgb_lpips, bgr_lpips)
    assert M.BGR_FLIPPED_METRICS == ("ms_ssim", "lpips")
    with pytest.raises(ValueError, match="image must have 3 channels"):
        M.to_published_channel_order(torch.rand(1, 1, 8, 8))
