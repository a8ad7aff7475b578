import torch
import torch.nn.functional as F

from ifrvp_core.warp import backward_warp, base_grid


def _texture(h=24, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, h, w, generator=g)


def test_integer_shift_equals_shifted_image_in_interior():
    image = _texture()
    dx, dy = 3, -2
    flow = torch.zeros(2, 2, 24, 32)
    flow[:, 0], flow[:, 1] = dx, dy
    warped = backward_warp(image, flow)
    # out[y, x] = image[y + dy, x + dx]
    interior = warped[:, :, 2:22, 0:29]
    reference = image[:, :, 0:20, 3:32]
    assert torch.allclose(interior, reference, atol=1e-5)


def test_zero_flow_is_identity_and_fractional_flow_interpolates():
    image = _texture()
    assert torch.allclose(backward_warp(image, torch.zeros(2, 2, 24, 32)), image, atol=1e-5)  # float32 grid rounding
    half = torch.zeros(2, 2, 24, 32)
    half[:, 0] = 0.5
    out = backward_warp(image, half)
    assert torch.allclose(out[..., :-1], 0.5 * (image[..., :-1] + image[..., 1:]), atol=1e-5)


def test_gradients_reach_image_and_flow():
    image = _texture().requires_grad_()
    flow = (torch.randn(2, 2, 24, 32) * 2).requires_grad_()
    backward_warp(image, flow).square().sum().backward()
    assert image.grad.abs().sum() > 0 and flow.grad.abs().sum() > 0


def test_grid_is_cached_and_inference_grid_does_not_break_training():
    g1 = base_grid(8, 8, torch.device("cpu"), torch.float32)
    assert base_grid(8, 8, torch.device("cpu"), torch.float32) is g1
    image = _texture(8, 8)
    with torch.inference_mode():
        backward_warp(image, torch.zeros(2, 2, 8, 8))
    flow = torch.zeros(2, 2, 8, 8, requires_grad=True)
    backward_warp(image, flow).sum().backward()
    assert flow.grad is not None


def test_matches_published_formulation():
    image, flow = _texture(), torch.randn(2, 2, 24, 32) * 3
    h, w = 24, 32
    xx = torch.linspace(-1.0, 1.0, w).view(1, 1, 1, w).expand(2, -1, h, -1)
    yy = torch.linspace(-1.0, 1.0, h).view(1, 1, h, 1).expand(2, -1, -1, w)
    grid = torch.cat([xx, yy], 1)
    flow_ = torch.cat([flow[:, 0:1] / ((w - 1.0) / 2.0), flow[:, 1:2] / ((h - 1.0) / 2.0)], 1)
    ref = F.grid_sample(image, (grid + flow_).permute(0, 2, 3, 1), mode="bilinear", padding_mode="border", align_corners=True)
    assert torch.allclose(backward_warp(image, flow), ref, atol=1e-6)


def test_bad_shapes_raise():
    import pytest

    with pytest.raises(ValueError, match="flow"):
        backward_warp(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="differ"):
        backward_warp(torch.rand(1, 3, 8, 8), torch.rand(1, 2, 8, 9))
