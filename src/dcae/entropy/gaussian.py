"""The conditional Gaussian model of the latent y given predicted means and scales."""

from __future__ import annotations

import torch
from torch import nn

from .ops import lower_bound, standard_normal_cdf

SCALE_BOUND = 0.11
LIKELIHOOD_BOUND = 1e-9


class GaussianConditional(nn.Module):
    """Likelihood of quantised values under N(mean, scale^2) integrated over a unit bin.

    Scales are bounded below by 0.11 and likelihoods by 1e-9, as in the reference.
    """

    def likelihood(self, y_hat: torch.Tensor, scales: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        """P(y_hat | mean, scale) for every element; all three tensors share one shape."""
        dtype = torch.float64 if y_hat.dtype == torch.float64 else torch.float32  # never half precision
        values = torch.abs(y_hat - means).to(dtype)
        scales = lower_bound(scales.to(dtype), SCALE_BOUND)
        upper = standard_normal_cdf((0.5 - values) / scales)
        lower = standard_normal_cdf((-0.5 - values) / scales)
        return lower_bound(upper - lower, LIKELIHOOD_BOUND).to(y_hat.dtype)
