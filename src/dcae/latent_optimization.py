"""Encoder-side latent optimisation: adapt y and z to one image before entropy coding.

The analysis transform is trained to be good on average; for a given image, a few gradient
steps on the latents themselves lower that image's rate-distortion cost further. Only the
encoder does this work: the decoder, the file format and the weights stay as they are.

Every step also evaluates the objective with hard rounding everywhere, as the codec codes and
decodes (the rate as the model's likelihoods count it, within about 0.5% of the file's payload),
so the search keeps the best latents it has seen: by the model's own measure of rate and
distortion, the result never costs more than the plain encoder's latents.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from .entropy import quantize
from .errors import QualityError
from .model import DCAE, SliceContext, run_slices
from .tiling import AUTO_TILE_PIXELS

# Adam's step on the latents (whose quantisation step is 1), decayed to zero on a cosine.
DEFAULT_LEARNING_RATE = 0.006


@dataclass
class OptimizedLatents:
    """The latents to code and what the search measured (costs in the training objective's units)."""

    y: torch.Tensor
    z: torch.Tensor
    initial_cost: list[float]  # per image, the plain encoder's latents
    final_cost: list[float]  # per image, the latents returned


def lambda_for_quality(lambdas: Sequence[float], quality: "float | None") -> float:
    """The trade-off a model was trained with at ``quality``: geometric interpolation between
    rate points, as the gain units interpolate."""
    if not lambdas:
        raise ValueError("the model's training lambdas are unknown")
    if quality is None:
        if len(lambdas) != 1:
            raise ValueError("a variable-rate model needs a quality")
        return float(lambdas[0])
    q = min(max(float(quality), 0.0), len(lambdas) - 1.0)
    low = min(int(math.floor(q)), len(lambdas) - 1)
    high = min(low + 1, len(lambdas) - 1)
    t = q - low
    return math.exp((1 - t) * math.log(lambdas[low]) + t * math.log(lambdas[high]))


@contextlib.contextmanager
def _frozen(model: DCAE) -> Iterator[None]:
    """No weight gradients while searching (they would double the cost of each step)."""
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def rate_distortion_costs(
    model: DCAE,
    x: torch.Tensor,
    y: torch.Tensor,
    z: torch.Tensor,
    quality: "float | None",
    lmbda: float,
    size: tuple[int, int],
    generator: "torch.Generator | None" = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image costs ``bpp + lambda * 255^2 * MSE`` of coding (y, z) for the padded batch ``x``.

    Returns ``(proxy, exact)``, both shaped (B,). ``exact`` is the model's measure of what the
    codec spends: hard rounding everywhere, the rate as ``-log2`` of the likelihoods (no
    gradient). ``proxy`` is what the search descends: the rate of the
    latents under additive uniform noise (rounding's smooth stand-in, whose gradient steers far
    better than a straight-through one) and the distortion of the hard-rounded reconstruction
    with straight-through gradients. Distortion counts only the top-left ``size`` (height,
    width) of each image, the part the decoder keeps. ``generator`` draws the noise.
    """

    def noisy(values: torch.Tensor) -> torch.Tensor:
        noise = torch.rand(values.shape, generator=generator, device=values.device, dtype=values.dtype)
        return values + noise - 0.5

    height, width = size
    pixels = height * width
    z_hat = quantize(z, model.z_medians().to(z.dtype), "ste")
    prior = model.entropy_bottleneck
    bits = {"proxy": -torch.log2(prior.likelihood(noisy(z))).flatten(1).sum(1)}
    with torch.no_grad():
        bits["exact"] = -torch.log2(prior.likelihood(z_hat)).flatten(1).sum(1)

    def quantize_slice(_index: int, y_slice: "torch.Tensor | None", ctx: SliceContext) -> torch.Tensor:
        assert y_slice is not None
        y_hat_slice = quantize(y_slice, ctx.mean, "ste")
        proxy_likelihood = model.gaussian_conditional.likelihood(noisy(y_slice), ctx.scale, ctx.mean)
        bits["proxy"] = bits["proxy"] - torch.log2(proxy_likelihood).flatten(1).sum(1)
        with torch.no_grad():
            likelihood = model.gaussian_conditional.likelihood(y_hat_slice, ctx.scale, ctx.mean)
            bits["exact"] = bits["exact"] - torch.log2(likelihood).flatten(1).sum(1)
        return y_hat_slice

    y_hat = run_slices(model, model.hyper_features(z_hat), y, quantize_slice)
    x_hat = model.synthesis(y_hat, quality).clamp(0, 1)
    distortion = lmbda * 255.0**2 * (x_hat - x)[..., :height, :width].pow(2).flatten(1).mean(1)
    return bits["proxy"] / pixels + distortion, bits["exact"] / pixels + distortion.detach()


def optimize_latents(
    model: DCAE,
    x: torch.Tensor,
    quality: "float | None",
    lmbda: float,
    steps: int,
    size: "tuple[int, int] | None" = None,
    learning_rate: float = DEFAULT_LEARNING_RATE,
) -> OptimizedLatents:
    """Search for latents of the padded batch ``x`` that cost less than ``g_a``'s.

    Adam on y and z for ``steps`` steps, the learning rate falling to zero on a cosine; returns,
    for each image, the cheapest latents seen (the starting ones when no step improved them).
    ``size`` is the images' unpadded (height, width).
    """
    if steps < 0:
        raise ValueError(f"optimisation steps must be >= 0, got {steps}")
    size = size or (x.shape[-2], x.shape[-1])
    with torch.no_grad():
        y = model.analysis(x, quality)
        z = model.h_a(y)
    best_y, best_z = y.clone(), z.clone()
    y, z = y.clone().requires_grad_(True), z.clone().requires_grad_(True)
    # A fixed seed: the same image and settings always give the same file.
    generator = torch.Generator(device=x.device).manual_seed(0)
    optimizer = torch.optim.Adam([y, z], lr=learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 0.5 * (1 + math.cos(math.pi * i / max(steps, 1))))
    with _frozen(model), torch.enable_grad():
        for step in range(steps + 1):
            proxy, exact = rate_distortion_costs(model, x, y, z, quality, lmbda, size, generator)
            if step == 0:
                initial_cost = best_cost = exact.clone()
            better = exact < best_cost
            best_cost = torch.where(better, exact, best_cost)
            best_y[better] = y.detach()[better]
            best_z[better] = z.detach()[better]
            if step == steps:
                break
            optimizer.zero_grad(set_to_none=True)
            proxy.sum().backward()
            optimizer.step()
            schedule.step()
    return OptimizedLatents(best_y, best_z, initial_cost.tolist(), best_cost.tolist())


def optimize_for_quality(
    model: DCAE,
    x: torch.Tensor,
    quality: "float | None",
    lambdas: Sequence[float],
    steps: int,
    size: tuple[int, int],
) -> OptimizedLatents:
    """:func:`optimize_latents` at the trade-off the model was trained for at ``quality``.

    Raises :class:`QualityError` for images above ``AUTO_TILE_PIXELS`` padded pixels: the
    search's gradients need the whole image in memory.
    """
    if x.shape[-2] * x.shape[-1] > AUTO_TILE_PIXELS:
        side = int(math.sqrt(AUTO_TILE_PIXELS))
        raise QualityError(
            f"latent optimisation handles images up to {side}x{side} pixels (its gradients need the "
            f"whole image in memory); this one is {size[1]}x{size[0]}"
        )
    return optimize_latents(model, x, quality, lambda_for_quality(lambdas, quality), steps, size)
