"""The entropy parameters of a DCAE in float64 on the CPU, for files that decode on any machine.

Everything between the decoded integers and a probability table (the hyper synthesis, the
dictionary cross-attention, the slice contexts and the latent residual prediction) is computed
here in float64. Differences between machines (vector widths, BLAS blocking, thread counts,
PyTorch builds) then stay near 1e-15 relative, some ten orders of magnitude below the spacing
of the coder's scale table, so every machine makes the same coding decisions (the residual risk
is measured in docs/format.md).

The maths is the model's own; it is only arranged for speed. Float64 products run at a quarter
of float32's rate here, and the largest cost is the first 3x3 convolution of the mean, scale and
residual-prediction networks, which all read the same support features: they run as one
convolution (one large matrix product instead of three), and the residual-prediction network's
share of the quantised slice is added when that slice is known.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .model import DCAE, SliceContext


class PortableParameters(nn.Module):
    """A float64 copy of a model's entropy-parameter networks with the slice loop's interface
    (:meth:`hyper_features`, :meth:`slice_context`, :meth:`refine_slice`)."""

    def __init__(self, model: DCAE) -> None:
        super().__init__()
        self.config = model.config
        parts = (
            "h_z_s1",
            "h_z_s2",
            "dt_cross_attention",
            "cc_mean_transforms",
            "cc_scale_transforms",
            "lrp_transforms",
        )
        for name in parts:
            setattr(self, name, copy.deepcopy(getattr(model, name)).to("cpu", torch.float64).eval())
        self.dt = nn.Parameter(model.dt.detach().to("cpu", torch.float64).clone(), requires_grad=False)
        self.requires_grad_(False)
        # One weight per slice for the three first convolutions over the support features.
        self._first_weights: list[tuple[torch.Tensor, torch.Tensor]] = []
        for mean, scale, lrp in zip(self.cc_mean_transforms, self.cc_scale_transforms, self.lrp_transforms):
            support_channels = mean[0].in_channels
            weight = torch.cat([mean[0].weight, scale[0].weight, lrp[0].weight[:, :support_channels]])
            bias = torch.cat([mean[0].bias, scale[0].bias, lrp[0].bias])
            self._first_weights.append((weight, bias))

    def hyper_features(self, z_hat: torch.Tensor) -> torch.Tensor:
        """As :meth:`DCAE.hyper_features`."""
        return torch.cat([self.h_z_s1(z_hat), self.h_z_s2(z_hat)], dim=1)

    def slice_context(self, index: int, hyper: torch.Tensor, previous: list[torch.Tensor]) -> SliceContext:
        """As :meth:`DCAE.slice_context`; the context also carries the residual-prediction
        network's first-layer response to the support features."""
        support_slices = previous[: self.config.support_count(index)]
        query = torch.cat([hyper, *support_slices], dim=1)
        support = torch.cat([query, self.dt_cross_attention[index](query, self.dt)], dim=1)
        weight, bias = self._first_weights[index]
        first = F.conv2d(support, weight, bias, padding=1)
        mean_first, scale_first, lrp_first = first.split(self.cc_mean_transforms[index][0].out_channels, dim=1)
        return SliceContext(
            mean=self.cc_mean_transforms[index][1:](mean_first),
            scale=self.cc_scale_transforms[index][1:](scale_first),
            support=lrp_first,
        )

    def refine_slice(self, index: int, context: SliceContext, y_hat_slice: torch.Tensor) -> torch.Tensor:
        """As :meth:`DCAE.refine_slice`, from the context's precomputed first-layer response."""
        lrp = self.lrp_transforms[index]
        slice_weight = lrp[0].weight[:, -y_hat_slice.shape[1] :]
        first = context.support + F.conv2d(y_hat_slice, slice_weight, padding=1)
        return y_hat_slice + 0.5 * torch.tanh(lrp[1:](first))
