"""Measure how far the analysis and synthesis transforms of a model see (their effective reach).

    python benchmarks/receptive_field.py [--model default]

A pixel (or latent) at the centre is perturbed; the table prints the largest distance at which
the output still changes by more than each tolerance. Tiles need a halo at least this large.
"""

from __future__ import annotations

import argparse

import torch

from dcae.codec import load_codec


def reach(fn, shape: tuple[int, ...], position: tuple[int, int], scale: float, tolerances) -> dict[float, float]:
    torch.manual_seed(0)
    x = torch.rand(shape)
    bumped = x.clone()
    bumped[..., position[0], position[1]] += 0.5
    with torch.inference_mode():
        diff = (fn(bumped) - fn(x)).abs().amax(dim=(0, 1))
    ys, xs = torch.meshgrid(torch.arange(diff.shape[0]), torch.arange(diff.shape[1]), indexing="ij")
    centre = (position[0] * scale, position[1] * scale)
    distance = torch.maximum((ys - centre[0]).abs(), (xs - centre[1]).abs()).float() / scale
    return {tol: float(distance[diff > tol].max()) if bool((diff > tol).any()) else 0.0 for tol in tolerances}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--size", type=int, default=768, help="side of the test image in pixels")
    args = parser.parse_args()
    codec = load_codec(args.model)
    model = codec.model
    quality = codec.default_quality()
    tolerances = (1e-2, 1e-3, 1e-4)
    side = args.size
    analysis = reach(
        lambda x: model.analysis(x, quality), (1, 3, side, side), (side // 2, side // 2), 1 / 16, tolerances
    )
    latent = side // 16
    synthesis = reach(
        lambda y: model.synthesis(y * 4, quality),
        (1, model.config.M, latent, latent),
        (latent // 2, latent // 2),
        16,
        tolerances,
    )
    print(f"model {args.model}; reach measured from the centre of a {side}x{side} image\n")
    print("| transform | unit | " + " | ".join(f"change > {t:g}" for t in tolerances) + " |")
    print("| --- | --- |" + " --- |" * len(tolerances))
    print("| analysis (pixel -> y) | pixels | " + " | ".join(f"{analysis[t]:.0f}" for t in tolerances) + " |")
    print("| synthesis (y -> pixel) | latents | " + " | ".join(f"{synthesis[t]:.1f}" for t in tolerances) + " |")


if __name__ == "__main__":
    main()
