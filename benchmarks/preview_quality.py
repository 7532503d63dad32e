"""Quality of progressive previews: decoding only the first K latent slices.

    python benchmarks/preview_quality.py [--model default] [--images 6] [--quality 2.5]

Slices not read are replaced by their predicted means. Prints mean PSNR and decode time for
every K, against the full decode.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from dcae.codec import load_codec
from dcae.imageio import load_image
from dcae.metrics import psnr

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--quality", type=float, default=2.5)
    args = parser.parse_args()
    codec = load_codec(args.model)
    slices = codec.model.config.num_slices
    quality = args.quality if codec.variable_rate else None
    rows: dict[int, list[tuple[float, float]]] = {k: [] for k in range(slices + 1)}
    bpps = []
    for path in sorted(KODAK.glob("*.png"))[: args.images]:
        image, _ = load_image(path)
        data = codec.compress(image, quality=quality)
        bpps.append(data.bpp)
        for k in range(slices + 1):
            start = time.perf_counter()
            decoded = codec.decompress(data, preview_slices=k).pixels
            rows[k].append((psnr(image, decoded), time.perf_counter() - start))
    print(f"model {args.model}, quality {quality}, {args.images} Kodak images, mean {np.mean(bpps):.3f} bpp\n")
    print("| slices decoded | mean PSNR (dB) | vs full (dB) | median decode (s) |")
    print("| --- | --- | --- | --- |")
    full = np.mean([p for p, _ in rows[slices]])
    for k in range(slices + 1):
        mean_psnr = np.mean([p for p, _ in rows[k]])
        print(
            f"| {k} of {slices} | {mean_psnr:.2f} | {mean_psnr - full:+.2f} | "
            f"{statistics.median(t for _, t in rows[k]):.2f} |"
        )


if __name__ == "__main__":
    main()
