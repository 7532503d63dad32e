"""Per-image BD-rate of one codec against another, from two `dcae eval` result files.

    python scripts/per_image_bd.py TEST.json ANCHOR.json [--images FOLDER] [--worst 8]

Each image is measured over its own shared PSNR range (the mean BD-rate hides which photos a
model loses on). With ``--images`` (the evaluated folder) every row also gets the image's share
of flat 16x16 blocks (luma standard deviation under 2 levels of 255) and of edge blocks (some
neighbouring-pixel step above 48 levels), and the correlation of each with the BD-rate is
printed: do the losses come from flat areas with sharp edges?
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import numpy as np

from dcae.evaluation.bdrate import bd_rate
from dcae.imageio import load_image

FLAT_STD = 2.0
EDGE_STEP = 48.0
BLOCK = 16


def block_traits(path: Path) -> tuple[float, float]:
    """(share of flat blocks, share of blocks holding a sharp edge) of an image's luma."""
    pixels = load_image(path, max_pixels=None)[0].astype(np.float64)
    luma = pixels @ np.array([0.299, 0.587, 0.114])
    rows, cols = luma.shape[0] // BLOCK, luma.shape[1] // BLOCK
    blocks = luma[: rows * BLOCK, : cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK).swapaxes(1, 2)
    flat = blocks.std(axis=(2, 3)) < FLAT_STD
    steps = np.maximum(
        np.abs(np.diff(blocks, axis=3)).max(axis=(2, 3)), np.abs(np.diff(blocks, axis=2)).max(axis=(2, 3))
    )
    return float(flat.mean()), float((steps > EDGE_STEP).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("test", type=Path)
    parser.add_argument("anchor", type=Path)
    parser.add_argument("--images", type=Path, help="the evaluated folder (for the block traits)")
    parser.add_argument("--worst", type=int, default=8, help="rows printed from each end")
    args = parser.parse_args()
    test, anchor = (json.loads(p.read_text())["per_image"] for p in (args.test, args.anchor))
    rows = []
    for image in sorted(set(test) & set(anchor)):
        t, a = test[image], anchor[image]
        value = bd_rate(a["bpp"], a["psnr-rgb"], t["bpp"], t["psnr-rgb"])
        if math.isfinite(value):
            traits = block_traits(args.images / image) if args.images else (math.nan, math.nan)
            rows.append((value, image, *traits))
    rows.sort()
    values = [r[0] for r in rows]
    print(f"{len(rows)} images: median {statistics.median(values):+.1f}%, mean {statistics.mean(values):+.1f}%, ")
    print(f"better than the anchor on {sum(v < 0 for v in values)}\n")
    print("| image | BD-rate | flat blocks | edge blocks |")
    print("| --- | --- | --- | --- |")
    shown = rows if len(rows) <= 2 * args.worst else rows[: args.worst] + rows[-args.worst :]
    for value, image, flat, edge in shown:
        print(f"| {image} | {value:+.1f}% | {flat:.0%} | {edge:.0%} |")
    if args.images and len(rows) > 2:
        for label, column in (("flat", 2), ("edge", 3)):
            r = np.corrcoef(values, [row[column] for row in rows])[0, 1]
            print(f"\ncorrelation of the BD-rate with the share of {label} blocks: {r:+.2f}", end="")
        print()


if __name__ == "__main__":
    main()
