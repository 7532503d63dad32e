"""Gain units: per-channel scaling of the latent that turns one model into a variable-rate one."""

from __future__ import annotations

import torch
from torch import nn


class GainUnits(nn.Module):
    """One positive gain vector per rate point, and its decoder-side inverse.

    The encoder multiplies y by ``gain(q)`` before quantisation and the decoder multiplies the
    quantised latent by ``inverse_gain(q)``. A fractional quality ``q`` interpolates
    geometrically between neighbouring rate points (gain_i^(1-t) * gain_{i+1}^t), which gives a
    continuous range of rates. Gains are stored as logarithms so they stay positive.
    """

    def __init__(self, points: int, channels: int) -> None:
        super().__init__()
        if points < 1:
            raise ValueError("GainUnits needs at least one rate point")
        self.points = points
        # Start from gains that grow with the rate index, so low indices give low rates.
        start = (
            torch.linspace(-1.0, 1.0, points, device="cpu")[:, None].expand(points, channels).clone()
            if points > 1
            else torch.zeros(1, channels, device="cpu")
        )
        self.log_gain = nn.Parameter(start)
        self.log_inverse_gain = nn.Parameter(-start.clone())

    @staticmethod
    def _interpolate(table: torch.Tensor, quality: "float | torch.Tensor") -> torch.Tensor:
        points = table.shape[0]
        q = torch.as_tensor(quality, dtype=table.dtype, device=table.device).clamp(0, points - 1)
        low = q.floor().long().clamp(max=points - 1)
        high = (low + 1).clamp(max=points - 1)
        frac = (q - low.to(q.dtype)).unsqueeze(-1)
        values = table[low] * (1 - frac) + table[high] * frac
        return values.exp()

    def gain(self, quality: "float | torch.Tensor") -> torch.Tensor:
        """Encoder gains shaped (1, C, 1, 1) for a scalar quality, (B, C, 1, 1) for one quality
        per image, or (B, C, h, w) for a quality map shaped (B, 1, h, w) (one per latent position)."""
        return self._as_map(self._interpolate(self.log_gain, quality))

    def inverse_gain(self, quality: "float | torch.Tensor") -> torch.Tensor:
        """Decoder gains, shaped like :meth:`gain`."""
        return self._as_map(self._interpolate(self.log_inverse_gain, quality))

    @staticmethod
    def _as_map(values: torch.Tensor) -> torch.Tensor:
        if values.dim() == 5:  # a quality map: (B, 1, h, w, C) -> (B, C, h, w)
            return values[:, 0].permute(0, 3, 1, 2)
        return values.reshape(-1, values.shape[-1], 1, 1)
