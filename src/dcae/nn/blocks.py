"""Convolutional building blocks: same-padded convolutions and residual bottlenecks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """A convolution padded by ``kernel // 2``, so stride ``s`` divides the size by ``s``."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)


def deconv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """A transposed convolution that multiplies the size by ``stride`` exactly."""
    return nn.ConvTranspose2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1)


class DepthwiseConv3x3(nn.Conv2d):
    """Depthwise 3x3 convolution, padded by 1 (parameters as ``nn.Conv2d(C, C, 3, groups=C)``).

    On CPU in float64, which the codec uses for the entropy parameters, PyTorch convolves group
    by group, over 100 times slower than in float32; there the same sum is taken as nine
    shifted multiply-adds in a fixed order, which also makes it exactly reproducible.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, channels, 3, padding=1, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float64 or x.device.type != "cpu":
            return super().forward(x)
        height, width = x.shape[-2:]
        padded = F.pad(x, (1, 1, 1, 1))
        weight = self.weight[:, 0]
        out = self.bias.reshape(1, -1, 1, 1).expand_as(x).clone()
        for dy in range(3):
            for dx in range(3):
                out += padded[..., dy : dy + height, dx : dx + width] * weight[:, dy, dx].reshape(1, -1, 1, 1)
        return out


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: "torch.Tensor | None" = None, scale: "float | None" = None
) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v over the last two axes.

    Without gradients this is ``scaled_dot_product_attention`` (fused kernels). With gradients
    PyTorch's CPU path for a float mask is its reference implementation, whose "safe" softmax
    spends ~7% of a training step checking for fully masked rows; none of our masks has one,
    so training uses the plain formulation instead (same maths).
    """
    if not (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    logits = torch.matmul(q, k.transpose(-2, -1)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    if mask is not None:
        logits = logits + mask
    return torch.matmul(logits.softmax(dim=-1), v)


class ResidualBottleneck(nn.Module):
    """1x1 squeeze to half width, 3x3, 1x1 expand, added to the input (keys conv1..conv3)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = channels // 2
        self.conv1 = nn.Conv2d(channels, mid, 1)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.conv3 = nn.Conv2d(mid, channels, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.conv1(x))
        out = self.relu(self.conv2(out))
        return x + self.conv3(out)


class ResidualDown(nn.Module):
    """A stride-2 5x5 convolution followed by three residual bottlenecks."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = conv(in_ch, out_ch, 5, 2)
        self.res1 = ResidualBottleneck(out_ch)
        self.res2 = ResidualBottleneck(out_ch)
        self.res3 = ResidualBottleneck(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res3(self.res2(self.res1(self.conv(x))))


class ResidualUp(nn.Module):
    """Three residual bottlenecks followed by a stride-2 5x5 transposed convolution."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.res1 = ResidualBottleneck(in_ch)
        self.res2 = ResidualBottleneck(in_ch)
        self.res3 = ResidualBottleneck(in_ch)
        self.conv = deconv(in_ch, out_ch, 5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.res3(self.res2(self.res1(x))))


class ChannelScale(nn.Module):
    """A learnable per-channel multiplier on the last axis, starting at 1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class ConvGLU(nn.Module):
    """Gated feed-forward on channels-last maps: half the hidden units pass a depthwise 3x3
    convolution and GELU, then gate the other half (keys fc1, dwconv.dwconv, fc2)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        if hidden % 2:
            raise ValueError(f"ConvGLU hidden width must be even, got {hidden}")
        half = hidden // 2
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = _DepthwiseConv(half)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(half, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate_in, value = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(self.act(self.dwconv(gate_in)) * value)


class _DepthwiseConv(nn.Module):
    """Depthwise 3x3 convolution applied to a channels-last (B, H, W, C) tensor."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dwconv = DepthwiseConv3x3(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
