"""Dictionary-based cross-attention: latent context queries a learnable dictionary of typical
structures (the "DCA" of DCAE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ChannelScale, ConvGLU, DepthwiseConv3x3


class _DepthwiseBottleneck(nn.Module):
    """1x1, GELU, depthwise 3x3, GELU, 1x1 on channels-first maps."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.in_trans = nn.Conv2d(dim, dim, 1)
        self.dw_conv = DepthwiseConv3x3(dim)
        self.out_trans = nn.Conv2d(dim, dim, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_trans(self.act(self.dw_conv(self.act(self.in_trans(x)))))


class _DenseBlock(nn.Module):
    """A chain of depthwise bottlenecks whose outputs, and the input, are fused by a 1x1 conv.

    Each step sees the previous one's output, so the fused features cover growing receptive fields.
    """

    def __init__(self, dim: int, depth: int) -> None:
        super().__init__()
        self.conv_layers = nn.ModuleList(nn.Sequential(nn.GELU(), _DepthwiseBottleneck(dim)) for _ in range(depth))
        self.proj = nn.Conv2d(dim * (depth + 1), dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.conv_layers:
            features.append(layer(features[-1]))
        return self.proj(torch.cat(features, dim=1))


class _SpatialGate(nn.Module):
    """A sigmoid gate from the channel mean and max through a 7x7 convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, 7, padding=3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv1(pooled))


class MultiScaleAggregation(nn.Module):
    """Local multi-scale aggregation on channels-first maps: 1x1, dense block, spatial gate."""

    def __init__(self, dim: int, depth: int) -> None:
        super().__init__()
        self.s = nn.Conv2d(dim, dim, 1)
        self.dense = _DenseBlock(dim, depth)
        self.spatial_atte = _SpatialGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dense(self.s(x))
        return out * self.spatial_atte(out)


class DictionaryCrossAttention(nn.Module):
    """Cross-attention from a context map to a shared learnable dictionary.

    Args:
        in_dim: channels of the context (query) map.
        dict_dim: width of a dictionary entry (heads * head_dim).
        heads: attention heads.
        out_dim: channels of the returned dictionary information.
        dense_depth: depth of the multi-scale aggregation before the attention.
        mlp_ratio: hidden width of the ConvGLU feed-forward relative to ``dict_dim``.

    Per head, logits are ``scale[h] * (q . k)`` with a learnable ``scale`` (no 1/sqrt(d)); the
    values are the layer-normalised dictionary itself. The scale is folded into q so the
    attention runs through ``scaled_dot_product_attention`` with ``scale=1``.
    """

    def __init__(
        self, in_dim: int, dict_dim: int, heads: int, out_dim: int, dense_depth: int = 3, mlp_ratio: int = 4
    ) -> None:
        super().__init__()
        if dict_dim % heads:
            raise ValueError(f"dict_dim {dict_dim} is not divisible by {heads} heads")
        self.heads = heads
        self.head_dim = dict_dim // heads
        self.scale = nn.Parameter(torch.ones(heads, 1, 1))
        self.x_trans = nn.Linear(in_dim, dict_dim)
        self.ln_scale = nn.LayerNorm(dict_dim)
        self.msa = MultiScaleAggregation(dict_dim, dense_depth)
        self.lnx = nn.LayerNorm(dict_dim)
        self.q_trans = nn.Linear(dict_dim, dict_dim)
        self.dict_ln = nn.LayerNorm(dict_dim)
        self.k = nn.Linear(dict_dim, dict_dim)
        self.linear = nn.Linear(dict_dim, dict_dim)
        self.ln_mlp = nn.LayerNorm(dict_dim)
        self.mlp = ConvGLU(dict_dim, mlp_ratio * dict_dim)
        self.output_trans = nn.Sequential(nn.Linear(dict_dim, out_dim))
        self.res_scale_1 = ChannelScale(dict_dim)
        self.res_scale_2 = ChannelScale(dict_dim)
        self.res_scale_3 = ChannelScale(dict_dim)

    def forward(self, context: torch.Tensor, dictionary: torch.Tensor) -> torch.Tensor:
        """Map a (B, in_dim, H, W) context and an (entries, dict_dim) dictionary to (B, out_dim, H, W)."""
        batch, _, height, width = context.shape
        x = self.x_trans(context.permute(0, 2, 3, 1))  # (B, H, W, D)
        local = self.msa(self.ln_scale(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = local + self.res_scale_1(x)

        shortcut = x
        q = self.q_trans(self.lnx(x)).reshape(batch, height * width, self.heads, self.head_dim).transpose(1, 2)
        q = q * self.scale.to(q.dtype)
        entries = self.dict_ln(dictionary).to(q.dtype)
        k = self.k(entries).reshape(1, -1, self.heads, self.head_dim).transpose(1, 2)
        v = entries.reshape(1, -1, self.heads, self.head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1), scale=1.0)
        out = out.transpose(1, 2).reshape(batch, height, width, -1)
        out = self.linear(out) + self.res_scale_2(shortcut)
        out = self.mlp(self.ln_mlp(out)) + self.res_scale_3(out)
        return self.output_trans(out).permute(0, 3, 1, 2)
