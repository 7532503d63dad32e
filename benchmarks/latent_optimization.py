"""What encoder-side latent optimisation buys, step by step.

    python benchmarks/latent_optimization.py [--model default] [--images 3] [--qualities 1 4]
        [--steps 0 5 10 20 40] [--threads 2]

Codes the first N Kodak images at each quality with each number of optimisation steps, decodes
the real files and prints, per step count, the median change in file size, PSNR and
rate-distortion cost (bpp + lambda * MSE in 8-bit units, the objective the model was trained
on) against the plain encoder, and the median encode time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from dcae.codec import load_codec
from dcae.imageio import load_image
from dcae.latent_optimization import lambda_for_quality
from dcae.metrics import psnr

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--qualities", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 5, 10, 20, 40])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codecs = {steps: load_codec(args.model, optimize_steps=steps) for steps in args.steps}
    lambdas = codecs[max(args.steps)].lambdas or []
    rows: dict[int, list[tuple[float, float, float, float]]] = {steps: [] for steps in args.steps}
    for path in sorted(KODAK.glob("*.png"))[: args.images]:
        image, _ = load_image(path)
        pixels = image.shape[0] * image.shape[1]
        for quality in args.qualities:
            lmbda = lambda_for_quality(lambdas, quality)
            measured = {}
            for steps, codec in codecs.items():
                start = time.perf_counter()
                data = codec.compress(image, quality=quality).data
                seconds = time.perf_counter() - start
                decoded = codec.decompress(data).pixels
                mse = float(np.mean((decoded.astype(np.float64) - image) ** 2))
                measured[steps] = (len(data), psnr(image, decoded), 8 * len(data) / pixels + lmbda * mse, seconds)
            size0, psnr0, cost0, _ = measured[min(args.steps)]
            for steps, (size, quality_db, cost, seconds) in measured.items():
                rows[steps].append((100 * (size / size0 - 1), quality_db - psnr0, 100 * (cost / cost0 - 1), seconds))
    print(f"{args.images} Kodak images x qualities {args.qualities}, model {args.model}, {args.threads} threads")
    print("| steps | size change | PSNR change | RD cost change | encode s (median) |")
    print("|---:|---:|---:|---:|---:|")
    for steps, values in rows.items():
        size, db, cost, seconds = (statistics.median(v[i] for v in values) for i in range(4))
        print(f"| {steps} | {size:+.2f}% | {db:+.3f} dB | {cost:+.2f}% | {seconds:.2f} |")


if __name__ == "__main__":
    main()
