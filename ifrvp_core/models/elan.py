"""ELAN block (Zhang et al., ECCV 2022, "Efficient Long-Range Attention Network").

Used by IFRNet_ELAN in place of each decoder ResBlock. Two parts, each with a residual:

1. local feature extraction: two shift-convolutions (a fifth of the channels shifted by one pixel in
   each of four directions each, then a 1x1 conv) with a ReLU between them;
2. group-wise multi-scale self-attention (GMSA): a 1x1 projection to a shared query/key and a value,
   channels split into three groups attending inside non-overlapping windows of 4, 8 and 16 pixels,
   then a 1x1 output projection.

Deliberate differences from the paper's super-resolution network, so the block fits this family:
no batch-norm (the family has none, which keeps DDP and small-batch training simple), no shifted
windows and no attention sharing between blocks, and attention logits scaled by 1/sqrt(d)
(``F.scaled_dot_product_attention``). Feature maps of any size are padded (replicate) up to a
multiple of the window and cropped back.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def shift_channels(x: torch.Tensor) -> torch.Tensor:
    """Shift four fifths of the channels by one pixel (left, right, up, down); zeros fill in.

    Args:
        x: (B, C, H, W).
    Returns:
        (B, C, H, W), the last ``C - 4 * (C // 5)`` channels unchanged.
    """
    group = x.shape[1] // 5
    left, right, up, down, rest = x.split([group, group, group, group, x.shape[1] - 4 * group], dim=1)
    left = F.pad(left[..., :, 1:], (0, 1, 0, 0))
    right = F.pad(right[..., :, :-1], (1, 0, 0, 0))
    up = F.pad(up[..., 1:, :], (0, 0, 0, 1))
    down = F.pad(down[..., :-1, :], (0, 0, 1, 0))
    return torch.cat([left, right, up, down, rest], dim=1)


class ShiftConv2d(nn.Module):
    """Channel shift followed by a 1x1 convolution: a 3x3 receptive field at 1x1 cost."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(shift_channels(x))


class LocalFeatureExtraction(nn.Module):
    """Two shift-convs with a ReLU between them and a residual: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, expansion: int = 2):
        super().__init__()
        self.shift1 = ShiftConv2d(channels, channels * expansion)
        self.shift2 = ShiftConv2d(channels * expansion, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift2(F.relu(self.shift1(x)))


def _group_sizes(channels: int, groups: int) -> list[int]:
    base, extra = divmod(channels, groups)
    return [base + (1 if i < extra else 0) for i in range(groups)]


class GroupMultiScaleAttention(nn.Module):
    """Window self-attention over three channel groups with windows 4, 8, 16 (query = key).

    (B, C, H, W) -> (B, C, H, W), residual included.
    """

    def __init__(self, channels: int, window_sizes: tuple[int, ...] = (4, 8, 16)):
        super().__init__()
        self.window_sizes = tuple(window_sizes)
        self.group_channels = _group_sizes(channels, len(window_sizes))
        self.project_in = nn.Conv2d(channels, channels * 2, 1)
        self.project_out = nn.Conv2d(channels, channels, 1)

    @staticmethod
    def _window_attention(qk: torch.Tensor, value: torch.Tensor, window: int) -> torch.Tensor:
        batch, channels, height, width = qk.shape
        pad_h, pad_w = (-height) % window, (-width) % window
        if pad_h or pad_w:
            qk = F.pad(qk, (0, pad_w, 0, pad_h), mode="replicate")
            value = F.pad(value, (0, pad_w, 0, pad_h), mode="replicate")
        rows, cols = qk.shape[-2] // window, qk.shape[-1] // window

        def to_windows(t: torch.Tensor) -> torch.Tensor:
            # (B, C, rows*w, cols*w) -> (B*rows*cols, w*w, C)
            t = t.reshape(batch, channels, rows, window, cols, window)
            return t.permute(0, 2, 4, 3, 5, 1).reshape(batch * rows * cols, window * window, channels)

        q = to_windows(qk)
        out = F.scaled_dot_product_attention(q, q, to_windows(value))
        out = out.reshape(batch, rows, cols, window, window, channels).permute(0, 5, 1, 3, 2, 4)
        out = out.reshape(batch, channels, rows * window, cols * window)
        return out[..., :height, :width]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qk, value = self.project_in(x).chunk(2, dim=1)
        outputs = [
            self._window_attention(qk_group, value_group, window)
            for qk_group, value_group, window in zip(
                qk.split(self.group_channels, dim=1), value.split(self.group_channels, dim=1), self.window_sizes
            )
        ]
        return x + self.project_out(torch.cat(outputs, dim=1))


class ELANBlock(nn.Module):
    """Local shift-conv part then multi-scale window attention: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, window_sizes: tuple[int, ...] = (4, 8, 16), expansion: int = 2):
        super().__init__()
        self.local = LocalFeatureExtraction(channels, expansion)
        self.attention = GroupMultiScaleAttention(channels, window_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.local(x))
