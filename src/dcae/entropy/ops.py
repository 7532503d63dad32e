"""Small differentiable operations shared by the entropy models."""

from __future__ import annotations

import math

import torch


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer in the forward pass; identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def quantize(
    x: torch.Tensor, mean: "torch.Tensor | None" = None, mode: str = "ste", noise: "torch.Tensor | None" = None
) -> torch.Tensor:
    """Quantise ``x`` on the integer grid centred on ``mean``.

    ``mode`` is ``"ste"`` (hard rounding, straight-through gradient), ``"noise"`` (additive
    uniform noise in [-0.5, 0.5), the differentiable proxy of rounding: ``noise`` when given,
    else drawn from PyTorch's generator) or ``"round"``.
    """
    centre = 0 if mean is None else mean
    if mode == "noise":
        return x + (noise if noise is not None else torch.empty_like(x).uniform_(-0.5, 0.5))
    if mode == "ste":
        return ste_round(x - centre) + centre
    if mode == "round":
        return torch.round(x - centre) + centre
    raise ValueError(f"unknown quantisation mode {mode!r}; expected 'ste', 'noise' or 'round'")


class _LowerBound(torch.autograd.Function):
    """max(x, bound), passing gradients that would push x back up from below the bound."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        pass_through = (x >= ctx.bound) | (grad < 0)
        return grad * pass_through.to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """Clamp from below without killing the gradient that would lift ``x`` above ``bound``."""
    return _LowerBound.apply(x, bound)


def standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """Phi(x) computed through erfc for accuracy in the lower tail."""
    return 0.5 * torch.erfc(x * (-1.0 / math.sqrt(2.0)))
