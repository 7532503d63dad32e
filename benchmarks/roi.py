"""Regions of interest against uniform quality at equal file size, on Kodak.

    python benchmarks/roi.py [--images 24] [--quality 1.5] [--roi-quality 4.5] [--threads 2]

For each image and each mask (a centre box of a third of each side; a 96x96 "face" box in the
upper middle), codes the image with the region at ``--roi-quality`` and the rest at
``--quality``, then codes it at a uniform quality with rate control to the same file size, and
reports the mean PSNR inside and outside the region for both.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dcae.codec import load_codec
from dcae.imageio import load_image
from dcae.metrics import psnr
from dcae.quality_map import roi_quality_map

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"


def masks(height: int, width: int) -> dict[str, np.ndarray]:
    centre = np.zeros((height, width), bool)
    centre[height // 3 : 2 * height // 3, width // 3 : 2 * width // 3] = True
    face = np.zeros((height, width), bool)
    top, left = height // 4, width // 2 - 48
    face[top : top + 96, left : left + 96] = True
    return {"centre box (1/9 of the area)": centre, "face box (96x96)": face}


def region_psnr(image: np.ndarray, decoded: np.ndarray, where: np.ndarray) -> float:
    return psnr(image[where][None], decoded[where][None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--quality", type=float, default=1.5)
    parser.add_argument("--roi-quality", type=float, default=4.5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codec = load_codec("default")
    rows: dict[str, list[tuple[float, float, float, float, float]]] = {}
    for path in sorted(KODAK.glob("*.png"))[: args.images]:
        image, _ = load_image(path)
        for name, mask in masks(*image.shape[:2]).items():
            roi = codec.compress(image, quality_map=roi_quality_map(mask, args.quality, args.roi_quality))
            uniform = codec.compress(image, target_size=len(roi.data))
            a, b = codec.decompress(roi).pixels, codec.decompress(uniform).pixels
            rows.setdefault(name, []).append(
                (
                    roi.bpp,
                    region_psnr(image, a, mask),
                    region_psnr(image, a, ~mask),
                    region_psnr(image, b, mask),
                    region_psnr(image, b, ~mask),
                )
            )
    print(
        f"{args.images} Kodak images; region at quality {args.roi_quality}, the rest at {args.quality}; "
        f"uniform: rate control to the same file size\n"
    )
    print("| mask | bpp | PSNR inside, ROI | inside, uniform | outside, ROI | outside, uniform |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, values in rows.items():
        bpp, in_roi, out_roi, in_uniform, out_uniform = np.mean(values, axis=0)
        print(f"| {name} | {bpp:.3f} | {in_roi:.2f} | {in_uniform:.2f} | {out_roi:.2f} | {out_uniform:.2f} |")


if __name__ == "__main__":
    main()
