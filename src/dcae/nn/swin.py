"""Swin transformer blocks: (shifted) window attention, a Swin layer, and a padded Swin stage."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ChannelScale, ConvGLU, attention

# Index and mask buffers are built on the CPU whatever the default device (they follow the model
# with .to()): building a model on PyTorch's "meta" device, to check a weights file's shapes
# without allocating them, then needs none of the meta device's slow Python implementations.


def _relative_position_index(window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices into a (2w-1, 2w-1) bias table for every query/key pair."""
    cells = torch.arange(window, device="cpu")
    ys, xs = torch.meshgrid(cells, cells, indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    return ys[:, None] - ys[None, :] + window - 1, xs[:, None] - xs[None, :] + window - 1


def _border_masks(window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Additive masks for the last row and last column of windows after a cyclic shift.

    Those windows hold pixels from both sides of the wrapped border; a query may only attend to
    keys from its own side. Only the row (or column) offset within the window matters, so one
    (N, N) mask serves every window in the last row, and another every window in the last column.
    """
    split = window - window // 2
    cells = torch.arange(window, device="cpu")
    ys, xs = torch.meshgrid(cells, cells, indexing="ij")
    row_side = ys.flatten() >= split
    col_side = xs.flatten() >= split
    neg_inf = torch.tensor(float("-inf"), device="cpu")
    zero = torch.tensor(0.0, device="cpu")
    row_mask = torch.where(row_side[:, None] != row_side[None, :], neg_inf, zero)
    col_mask = torch.where(col_side[:, None] != col_side[None, :], neg_inf, zero)
    return row_mask, col_mask


def _window_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Attention over (B, rows, cols, heads, N, hd) windows with a (1, heads, N, N) additive mask."""
    lead = q.shape[:3]
    flat = (-1, *q.shape[3:])
    out = attention(q.reshape(flat), k.reshape(flat), v.reshape(flat), mask)
    return out.reshape(*lead, *out.shape[1:])


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows, optionally shifted.

    Input and output are channels-last (B, H, W, C) with H and W multiples of ``window``.
    Parameter names follow the reference: ``embedding_layer`` (qkv), ``linear`` (output) and
    ``relative_position_params`` of shape (heads, 2w-1, 2w-1).
    """

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool) -> None:
        super().__init__()
        self.dim = dim
        self.head_dim = head_dim
        self.heads = dim // head_dim
        self.window = window
        self.shifted = shifted
        self.embedding_layer = nn.Linear(dim, 3 * dim)
        self.linear = nn.Linear(dim, dim)
        self.relative_position_params = nn.Parameter(torch.empty(self.heads, 2 * window - 1, 2 * window - 1))
        nn.init.trunc_normal_(self.relative_position_params, std=0.02)
        rel_y, rel_x = _relative_position_index(window)
        # Non-persistent buffers: computed once, follow .to(device), never saved in weights.
        self.register_buffer("rel_y", rel_y, persistent=False)
        self.register_buffer("rel_x", rel_x, persistent=False)
        if shifted:
            row_mask, col_mask = _border_masks(window)
            self.register_buffer("row_mask", row_mask, persistent=False)
            self.register_buffer("col_mask", col_mask, persistent=False)

    def relative_bias(self) -> torch.Tensor:
        """The (heads, N, N) additive bias for a window of N = window^2 tokens."""
        return self.relative_position_params[:, self.rel_y, self.rel_x]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        w = self.window
        shift = w // 2
        if self.shifted:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        rows, cols = height // w, width // w
        tokens = w * w
        windows = x.reshape(batch, rows, w, cols, w, channels).transpose(2, 3)
        qkv = self.embedding_layer(windows.reshape(batch, rows, cols, tokens, channels))
        qkv = qkv.view(batch, rows, cols, tokens, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(4, 0, 1, 2, 5, 3, 6).unbind(0)  # each (B, rows, cols, heads, N, hd)
        # A 4-D (1, heads, N, N) mask keeps PyTorch on its fused attention kernel; other mask
        # shapes fall back to the much slower reference (math) path.
        bias = self.relative_bias().to(q.dtype).unsqueeze(0)
        if self.shifted:
            out = self._shifted_attention(q, k, v, bias)
        else:
            out = _window_sdpa(q, k, v, bias)
        out = out.transpose(3, 4).reshape(batch, rows, cols, w, w, channels)
        out = out.transpose(2, 3).reshape(batch, height, width, channels)
        out = self.linear(out)
        if self.shifted:
            out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
        return out

    def _shifted_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Attention with the shift mask, applied only where it is not zero.

        Interior windows need only the bias; the last row, last column and the corner window
        each get one extra (N, N) mask. Memory stays proportional to the number of windows.
        """
        row_mask = self.row_mask.to(q.dtype)
        col_mask = self.col_mask.to(q.dtype)

        def attend(rows: slice, cols: slice, mask: torch.Tensor) -> torch.Tensor:
            return _window_sdpa(q[:, rows, cols], k[:, rows, cols], v[:, rows, cols], mask)

        head, last = slice(None, -1), slice(-1, None)
        n_rows, n_cols = q.shape[1], q.shape[2]
        bottom = [attend(last, head, bias + row_mask)] if n_cols > 1 else []
        bottom.append(attend(last, last, bias + row_mask + col_mask))
        bottom_row = torch.cat(bottom, dim=2) if len(bottom) > 1 else bottom[0]
        if n_rows == 1:
            return bottom_row
        top = [attend(head, head, bias)] if n_cols > 1 else []
        top.append(attend(head, last, bias + col_mask))
        top_rows = torch.cat(top, dim=2) if len(top) > 1 else top[0]
        return torch.cat([top_rows, bottom_row], dim=1)


class SwinLayer(nn.Module):
    """Pre-norm window attention and ConvGLU, each with a learnable per-channel residual scale."""

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.msa = WindowAttention(dim, head_dim, window, shifted)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = ConvGLU(dim, mlp_ratio * dim)
        self.res_scale_1 = ChannelScale(dim)
        self.res_scale_2 = ChannelScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.res_scale_1(x) + self.msa(self.ln1(x))
        return self.res_scale_2(x) + self.mlp(self.ln2(x))


class SwinStage(nn.Module):
    """Alternating regular and shifted Swin layers, a 3x3 convolution, and a residual around both.

    Takes channels-first (B, C, H, W) maps of any size: they are zero-padded at the bottom and
    right to a multiple of the window for the attention layers and cropped back afterwards.
    """

    def __init__(self, dim: int, head_dim: int, window: int, depth: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.window = window
        self.layers = nn.ModuleList(
            SwinLayer(dim, head_dim, window, shifted=bool(i % 2), mlp_ratio=mlp_ratio) for i in range(depth)
        )
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h = -height % self.window
        pad_w = -width % self.window
        out = x.permute(0, 2, 3, 1)
        if pad_h or pad_w:
            out = F.pad(out, (0, 0, 0, pad_w, 0, pad_h))
        for layer in self.layers:
            out = layer(out)
        if pad_h or pad_w:
            out = out[:, :height, :width]
        return self.conv(out.permute(0, 3, 1, 2).contiguous()) + x
