"""Where a dcae model's error lies near sharp edges, against AVIF at the same bits per pixel.

    python scripts/edge_errors.py FOLDER [--model compact-mse-v1] [--quality Q] [--images a.jpg b.jpg ...]

Every photo is coded with the model at ``--quality`` (default: its highest) and with AVIF 4:4:4
(speed 4, as `dcae eval` runs it) at the integer quality whose file size comes closest to the
model's, so the two are compared at (nearly) the same rate. Each photo's luma is split into
three regions: **edge** pixels (a step of more than 48 levels of 255 to a neighbour, and the
pixels on either side of it), the **band** within a few pixels of an edge, and everything else
(**rest**). For each codec the script prints the PSNR in each region, and two signs of what goes
wrong at an edge:

* **blur**: the share of the original's gradient magnitude lost on edge pixels
  (``1 - sum |grad decoded| / sum |grad original|`` there; positive: edges softened);
* **ringing**: new ripples in the band, per pixel: how far a decoded pixel stands out as a
  local peak or trough (against its left and right, or upper and lower neighbours) beyond what
  the original pixel does, counted from 2 levels up, in levels. Softening an edge makes a
  monotone ramp, which has no peaks: this counts oscillations beside edges, not blur.

Medians over the photos close the table. Which of the two the model has more of than AVIF tells
whether its losses at high rates come from softened edges or from ringing beside them.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from dcae.codec import load_codec
from dcae.evaluation.classic import CLASSIC_CODECS
from dcae.files import find_images
from dcae.imageio import load_image
from dcae.training.data import LUMA_WEIGHTS, SHARP_STEP

EDGE_STEP = float(SHARP_STEP)  # as training's edge-leaning crops and scripts/per_image_bd.py count edges
BAND = 4  # pixels beside an edge that belong to its band
RIPPLE_FLOOR = 2.0  # levels: smaller new peaks are rounding, not ringing
LUMA = np.array(LUMA_WEIGHTS)


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ LUMA


def gradient_magnitude(plane: np.ndarray) -> np.ndarray:
    """Central-difference gradient magnitude (one-sided at the border)."""
    rows, cols = np.gradient(plane)
    return np.hypot(rows, cols)


def ripple(plane: np.ndarray) -> np.ndarray:
    """How far each pixel stands out as a peak or a trough against its horizontal or its
    vertical neighbours (levels; 0 where it does not, and on the border)."""
    found = np.zeros_like(plane)
    for rows, out in ((plane, found), (plane.T, found.T)):  # along rows, then along columns
        centre = rows[:, 1:-1]
        rise, fall = centre - rows[:, :-2], centre - rows[:, 2:]
        peak = np.maximum(np.minimum(rise, fall), -np.maximum(rise, fall)).clip(min=0)
        np.maximum(out[:, 1:-1], peak, out=out[:, 1:-1])
    return found


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` grown by ``radius`` pixels (a square neighbourhood)."""
    grown = mask.copy()
    height, width = mask.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            src = mask[max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)]
            grown[max(0, dy) : height - max(0, -dy), max(0, dx) : width - max(0, -dx)] |= src
    return grown


def regions(original: np.ndarray) -> dict[str, np.ndarray]:
    """The edge, band and rest masks of an original's luma."""
    steps_right = np.abs(np.diff(original, axis=1)) > EDGE_STEP
    steps_down = np.abs(np.diff(original, axis=0)) > EDGE_STEP
    edge = np.zeros(original.shape, dtype=bool)
    edge[:, :-1] |= steps_right
    edge[:, 1:] |= steps_right
    edge[:-1] |= steps_down
    edge[1:] |= steps_down
    band = dilate(edge, BAND) & ~edge
    return {"edge": edge, "band": band, "rest": ~(edge | band)}


def measure(original: np.ndarray, decoded: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Region PSNRs (luma), blur on edges and ringing in the band of one decoded image."""
    error = (decoded - original) ** 2
    found = {}
    for name, mask in masks.items():
        mse = float(error[mask].mean()) if mask.any() else float("nan")
        found[name] = 10 * np.log10(255.0**2 / max(mse, 1e-10))
    g_orig, g_dec = gradient_magnitude(original), gradient_magnitude(decoded)
    edge, band = masks["edge"], masks["band"]
    found["blur"] = 1 - float(g_dec[edge].sum() / max(g_orig[edge].sum(), 1e-10)) if edge.any() else float("nan")
    new_ripples = ripple(decoded) - ripple(original)
    new_ripples[new_ripples < RIPPLE_FLOOR] = 0
    found["ringing"] = float(new_ripples[band].mean()) if band.any() else float("nan")
    return found


def avif_near(rgb: np.ndarray, target_bytes: int) -> tuple[bytes, int]:
    """The AVIF file (and its quality) whose size comes closest to ``target_bytes``."""
    avif = CLASSIC_CODECS["avif"]
    low, high, tried = 0, 100, {}
    while low <= high:  # sizes grow with the quality: bisect on it
        middle = (low + high) // 2
        tried[middle] = avif.encode(rgb, middle)
        if len(tried[middle]) < target_bytes:
            low = middle + 1
        else:
            high = middle - 1
    quality = min(tried, key=lambda q: abs(len(tried[q]) - target_bytes))
    return tried[quality], quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", default="default")
    parser.add_argument("--quality", type=float, help="the model's quality (default: its highest)")
    parser.add_argument("--images", nargs="+", help="file names in the folder (default: all)")
    args = parser.parse_args()
    codec = load_codec(args.model)
    quality = args.quality if args.quality is not None else (codec.quality_range or (None, None))[1]
    paths = [args.folder / name for name in args.images] if args.images else find_images(args.folder)
    columns = ("edge", "band", "rest", "blur", "ringing")
    print(f"{args.model} at quality {quality} against AVIF 4:4:4 at the nearest size\n")
    print("| image | share of edge / band pixels | bpp dcae / avif | " + " | ".join(columns) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in columns) + " |")
    results: dict[str, list[dict[str, float]]] = {"dcae": [], "avif": []}
    for path in paths:
        rgb = load_image(path, max_pixels=None)[0]
        pixels = rgb.shape[0] * rgb.shape[1]
        coded = codec.compress(rgb, quality=quality)
        avif_file, _ = avif_near(rgb, len(coded))
        original = luma(rgb)
        masks = regions(original)
        decoded = {
            "dcae": luma(codec.decompress(coded).pixels),
            "avif": luma(CLASSIC_CODECS["avif"].decode(avif_file)),
        }
        rows = {name: measure(original, plane, masks) for name, plane in decoded.items()}
        for name, row in rows.items():
            results[name].append(row)
        shares = f"{masks['edge'].mean():.1%} / {masks['band'].mean():.1%}"
        rates = f"{8 * len(coded) / pixels:.3f} / {8 * len(avif_file) / pixels:.3f}"
        cells = " | ".join(f"{rows['dcae'][c]:.2f} / {rows['avif'][c]:.2f}" for c in columns)
        print(f"| {path.name} | {shares} | {rates} | {cells} |", flush=True)
    medians = {
        name: {c: statistics.median(r[c] for r in rows if np.isfinite(r[c])) for c in columns}
        for name, rows in results.items()
    }
    cells = " | ".join(f"{medians['dcae'][c]:.2f} / {medians['avif'][c]:.2f}" for c in columns)
    print(f"| median ({len(paths)} photos) | | | {cells} |")
    print("\nregion PSNRs in dB (dcae / avif); blur: share of edge gradient lost;")
    print("ringing: new ripple levels per band pixel")


if __name__ == "__main__":
    main()
