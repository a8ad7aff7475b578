import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from ifrvp_core import build_model
from ifrvp_core.visualisation import (
    color_wheel_legend,
    flow_to_color,
    prediction_figure,
    pyramid_flow_figure,
    rollout_strip,
    side_by_side,
    write_animation,
)


def uniform_flow(dx, dy, h=8, w=8):
    flow = torch.zeros(2, h, w)
    flow[0], flow[1] = dx, dy
    return flow


def test_flow_colours_follow_the_middlebury_wheel():
    right = flow_to_color(uniform_flow(3, 0))[4, 4].astype(int)
    left = flow_to_color(uniform_flow(-3, 0))[4, 4].astype(int)
    assert right[0] > right[2] + 100  # right is red
    assert left[2] > left[0] + 50 or left[1] > left[0] + 50  # left is cyan/blue-green
    still = flow_to_color(uniform_flow(0, 0))[4, 4]
    assert still.min() >= 250  # zero flow is white


def test_shared_scale_makes_half_flow_less_saturated():
    full = flow_to_color(uniform_flow(4, 0), max_magnitude=4.0)[4, 4].astype(int)
    half = flow_to_color(uniform_flow(2, 0), max_magnitude=4.0)[4, 4].astype(int)
    own_scale = flow_to_color(uniform_flow(2, 0))[4, 4].astype(int)
    saturation = lambda c: c.max() - c.min()
    assert saturation(half) < saturation(full) - 30
    assert saturation(own_scale) == saturation(full)
    assert flow_to_color(torch.randn(3, 2, 8, 8)).shape == (3, 8, 8, 3)
    assert color_wheel_legend(64).shape == (64, 64, 3)


@pytest.mark.parametrize("k", [2, 3])
def test_figures_build_on_model_output(k):
    torch.manual_seed(0)
    model = build_model("IFRNet_T", context_frames=k)
    sample = {"context": torch.rand(1, k, 3, 32, 48), "target": torch.rand(1, 1, 3, 32, 48)}
    with torch.no_grad():
        output = model(sample["context"], 2.0)
    fig = prediction_figure(sample, output)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) >= 3 + 5 * k  # context, prediction/truth/error, 5 rows per frame, residual
    assert len(pyramid_flow_figure(output).axes) == (k + 1) * 4
    strip = rollout_strip(sample["context"][0], torch.rand(3, 3, 32, 48), torch.rand(3, 3, 32, 48))
    assert len([ax for ax in strip.axes if ax.images]) == k + 9


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_write_animation_round_trip_with_odd_sizes(tmp_path, suffix):
    frames = [np.full((33, 47, 3), 40 * i, np.uint8) for i in range(5)]
    path = write_animation(frames, tmp_path / f"roll{suffix}", fps=5)
    read = imageio.mimread(path) if suffix == ".gif" else list(imageio.get_reader(path, format="FFMPEG").iter_data())
    assert len(read) == 5
    expected = (33, 47) if suffix == ".gif" else (34, 48)
    assert read[0].shape[:2] == expected
    assert not list(tmp_path.glob(".*tmp*"))


def test_side_by_side_width_is_sum_plus_separators():
    a, b = np.zeros((20, 30, 3), np.uint8), torch.rand(3, 20, 40)
    out = side_by_side(a, b, np.zeros((10, 10, 3), np.uint8), labels=["a", "b", "c"], separator=4)
    assert out.shape == (20, 30 + 40 + 10 + 8, 3)
