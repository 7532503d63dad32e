"""Discrete probability tables that the entropy coder uses for z and y.

Both encoder and decoder build these from the same inputs with the same float64 arithmetic,
so they code with identical probabilities.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch

from .factorized import FactorizedPrior
from .gaussian import SCALE_BOUND

# Residuals beyond this many standard deviations are sent through the escape path.
TAIL_SIGMAS = 6.5
# Largest scale in the table; larger predicted scales use the last entry (and escapes if needed).
MAX_TABLE_SCALE = 256.0
DEFAULT_SCALE_TABLE_SIZE = 128
# Alphabets of z are clipped to this many symbols per channel; rarer values escape.
MAX_Z_ALPHABET = 4095


@dataclass(frozen=True)
class CategoricalTable:
    """Probabilities of the symbols ``low .. low + len(probs) - 2``; the last entry is the escape."""

    low: int
    probs: np.ndarray

    @property
    def high(self) -> int:
        return self.low + len(self.probs) - 2


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    return 0.5 * erfc(-x / math.sqrt(2.0))


class GaussianTables:
    """Zero-mean quantised Gaussians for a log-spaced table of scales.

    A predicted scale is snapped to the nearest table entry in log space; the residual
    ``round(y - mean)`` is then coded with that entry's distribution. The coded distribution is
    a function of the integer index alone.
    """

    def __init__(self, size: int = DEFAULT_SCALE_TABLE_SIZE) -> None:
        if not 2 <= size <= 4096:
            raise ValueError(f"scale table size must be in [2, 4096], got {size}")
        self.size = size
        self._log_low = math.log(SCALE_BOUND)
        # spacing of the scales in log space: a predicted scale snaps to the nearest entry
        self.log_step = (math.log(MAX_TABLE_SCALE) - self._log_low) / (size - 1)
        self.scales = np.exp(self._log_low + self.log_step * np.arange(size))
        self.tables = [self._table(s) for s in self.scales]

    @staticmethod
    def _table(scale: float) -> CategoricalTable:
        tail = int(math.ceil(TAIL_SIGMAS * scale))
        magnitudes = np.abs(np.arange(-tail, tail + 1, dtype=np.float64))
        # Evaluate in the lower tail (negative arguments), where the CDF keeps its precision.
        probs = _normal_cdf((0.5 - magnitudes) / scale) - _normal_cdf((-0.5 - magnitudes) / scale)
        escape = max(1.0 - probs.sum(), 1e-12)
        return CategoricalTable(-tail, np.append(probs, escape))

    def indexes(self, scales: torch.Tensor) -> torch.Tensor:
        """Table index (int64) of every scale, nearest in log space, same shape as ``scales``."""
        logs = torch.log(scales.detach().double().clamp_min(SCALE_BOUND))
        idx = torch.round((logs - self._log_low) / self.log_step)
        return idx.clamp_(0, self.size - 1).long()


def tabulate_factorized(prior: FactorizedPrior) -> list[CategoricalTable]:
    """Per-channel tables of z's offsets from the channel median, from the learned density.

    The alphabet of channel c spans the prior's fitted tail quantiles; values outside escape.
    Every channel is evaluated at once (one batched pass over the density's layers, in float64).
    """
    prior64 = copy.deepcopy(prior).double().cpu()
    with torch.no_grad():
        quantiles = prior64.quantiles[:, 0, :]
        medians = quantiles[:, 1]
        lows = torch.floor(quantiles[:, 0] - medians).clamp(-(MAX_Z_ALPHABET // 2), 0).long()
        highs = torch.ceil(quantiles[:, 2] - medians).clamp(0, MAX_Z_ALPHABET // 2).long()
        lengths = highs - lows + 1
        # Channel c's offsets lows[c] .. highs[c], padded to the longest alphabet (the padding is cut off).
        offsets = lows[:, None].double() + torch.arange(int(lengths.max()), dtype=torch.float64)
        values = (medians[:, None] + offsets)[:, None, :]
        lower = prior64.logits_cumulative(values - 0.5)
        upper = prior64.logits_cumulative(values + 0.5)
        sign = -torch.sign(lower + upper)
        probs = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))[:, 0, :].numpy()
    tables = []
    for c in range(prior64.channels):
        channel = probs[c, : int(lengths[c])]
        escape = max(1.0 - channel.sum(), 1e-12)
        tables.append(CategoricalTable(int(lows[c]), np.append(channel, escape)))
    return tables
