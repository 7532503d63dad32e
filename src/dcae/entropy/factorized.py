"""The factorized prior over the hyper-latent z (Balle et al. 2018), CompressAI-compatible names."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .ops import lower_bound, quantize

LIKELIHOOD_BOUND = 1e-9


def _likelihood_dtype(x: torch.Tensor) -> torch.dtype:
    """Likelihoods are computed in float32, or float64 for float64 inputs (never in half precision)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class FactorizedPrior(nn.Module):
    """A learned, per-channel, non-parametric density for z, convolved with a unit box.

    Parameters are named as in CompressAI's ``EntropyBottleneck`` (``matrices.i``, ``biases.i``,
    ``factors.i``, ``quantiles``) so reference checkpoints load directly. ``quantiles`` holds,
    per channel, estimates of the 1e-9 quantile, the median and the 1-1e-9 quantile of the
    density; they are fitted by :meth:`aux_loss` and decide the coded alphabet of z.
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3, 3), init_scale: float = 10.0) -> None:
        super().__init__()
        self.channels = channels
        widths = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1.0 / scale / widths[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, widths[i + 1], widths[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, widths[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, widths[i + 1], 1)))
        # Made on the CPU whatever the default device (see dcae.nn.swin).
        self.quantiles = nn.Parameter(torch.tensor([-init_scale, 0.0, init_scale], device="cpu").repeat(channels, 1, 1))
        tail = math.log(2.0 / LIKELIHOOD_BOUND - 1.0)
        self.register_buffer("target", torch.tensor([-tail, 0.0, tail], device="cpu"), persistent=False)

    def medians(self) -> torch.Tensor:
        """Per-channel medians, shaped (C,)."""
        return self.quantiles[:, 0, 1]

    def logits_cumulative(self, values: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """The density's cumulative logits at ``values`` shaped (C, 1, n)."""
        logits = values
        for i, matrix in enumerate(self.matrices):
            bias = self.biases[i]
            if detach_params:
                matrix, bias = matrix.detach(), bias.detach()
            logits = torch.matmul(F.softplus(matrix), logits) + bias
            if i < len(self.factors):
                factor = self.factors[i].detach() if detach_params else self.factors[i]
                logits = logits + torch.tanh(factor) * torch.tanh(logits)
        return logits

    def likelihood(self, z_hat: torch.Tensor) -> torch.Tensor:
        """P(z_hat) under the density integrated over [z_hat - 0.5, z_hat + 0.5], shape of z_hat."""
        channels = z_hat.shape[1]
        values = z_hat.transpose(0, 1).reshape(channels, 1, -1).to(_likelihood_dtype(z_hat))
        lower = self.logits_cumulative(values - 0.5)
        upper = self.logits_cumulative(values + 0.5)
        # Evaluate on the side of the median where sigmoids are far from 1, for precision.
        sign = -torch.sign(lower + upper).detach()
        prob = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        prob = lower_bound(prob, LIKELIHOOD_BOUND)
        shape = (channels, z_hat.shape[0], *z_hat.shape[2:])
        return prob.reshape(shape).transpose(0, 1).to(z_hat.dtype)

    def forward(
        self, z: torch.Tensor, mode: str = "noise", noise: "torch.Tensor | None" = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantise z (``mode`` and ``noise`` as in :func:`quantize`, centred on the medians) and
        return ``(z_hat, likelihoods)``. In eval mode the rounding is always hard."""
        if not self.training:
            mode = "round"
        medians = self.medians().reshape(1, -1, 1, 1).to(z.dtype)
        z_hat = quantize(z, None if mode == "noise" else medians, mode, noise)
        return z_hat, self.likelihood(z_hat)

    def aux_loss(self) -> torch.Tensor:
        """Pulls ``quantiles`` onto the density's tails and median; optimise separately."""
        logits = self.logits_cumulative(self.quantiles, detach_params=True)
        return torch.abs(logits - self.target).sum()
