"""Entropy models (probability of latents) and their coding into bytes."""

from .factorized import FactorizedPrior
from .gaussian import GaussianConditional
from .ops import quantize, ste_round

__all__ = ["FactorizedPrior", "GaussianConditional", "quantize", "ste_round"]
