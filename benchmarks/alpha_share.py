"""How much of a .dcae file the alpha plane takes, on transparent images.

    python benchmarks/alpha_share.py [--quality 2.5] [--real PNG ...]

Two kinds of image: real RGBA files given with ``--real`` (whatever transparent PNGs are at
hand), and Kodak photos with two mattes made from them, the shapes a cut-out has: a soft-edged
ellipse (a feathered subject) and a hard key on brightness (a subject cut from its background
with jagged edges). Each is coded with the default model; the table gives the file, the alpha
part and its share. The alpha plane is a grayscale PNG (lossless); the colour under transparent
pixels is coded as it is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from dcae.codec import load_codec

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"


def kodak_cutouts(names: list[str]) -> list[tuple[str, np.ndarray]]:
    """Kodak photos with a feathered elliptical matte and with a hard brightness key."""
    found = []
    for name in names:
        rgb = np.asarray(Image.open(KODAK / f"{name}.png").convert("RGB"))
        height, width = rgb.shape[:2]
        rows, cols = np.mgrid[0:height, 0:width]
        inside = ((rows - height / 2) / (0.4 * height)) ** 2 + ((cols - width / 2) / (0.35 * width)) ** 2 <= 1
        soft = Image.fromarray((inside * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(12))
        found.append((f"{name} feathered ellipse", np.dstack([rgb, np.asarray(soft)])))
        key = (np.asarray(Image.fromarray(rgb).convert("L")) > 100).astype(np.uint8) * 255
        found.append((f"{name} brightness key", np.dstack([rgb, key])))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", type=float, default=2.5)
    parser.add_argument("--real", nargs="*", default=[], help="real RGBA images")
    parser.add_argument("--kodak", nargs="*", default=["kodim04", "kodim15", "kodim23"])
    args = parser.parse_args()
    codec = load_codec("default")
    images = [(Path(p).name, np.asarray(Image.open(p).convert("RGBA"))) for p in args.real]
    images += kodak_cutouts(args.kodak)
    print("| image | size | transparent pixels | file (bytes) | alpha part (bytes) | alpha share |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, rgba in images:
        compressed = codec.compress(rgba, quality=args.quality)
        parts = compressed.header.side_parts
        alpha = len(parts.alpha_image) if parts and parts.alpha_image else 0
        transparent = float(np.mean(rgba[..., 3] < 255))
        print(
            f"| {name} | {rgba.shape[1]}x{rgba.shape[0]} | {transparent:.0%} | {len(compressed)} | {alpha} | "
            f"{alpha / len(compressed):.1%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
