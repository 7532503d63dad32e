"""Per-image BD-rate of one codec against another, from two `dcae eval` result files.

    python scripts/per_image_bd.py TEST.json ANCHOR.json [--images FOLDER] [--worst 8]

Each image is measured over its own shared PSNR range (the mean BD-rate hides which photos a
model loses on), and by the PSNR difference at the test codec's lowest and highest rate (where
on the curve it loses; the anchor's curve interpolated, NaN outside its range). With
``--images`` (the evaluated folder) every row also gets the image's share of flat 16x16 blocks
(luma standard deviation under 2 levels of 255), of edge blocks (some neighbouring-pixel step
above 48 levels) and of pixels on contours (sharp steps whose surroundings share one orientation,
`dcae.training.data.contour_pixels`: hulls and frames, not texture), and the correlation of each
with the BD-rate is printed: do the losses come from flat areas, sharp edges or contours? With
``--side-info MODEL`` each printed row also gets the hyper-latent's (side information's) share
of the model's estimated bits at the lowest and the highest quality.
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
from dcae.training.data import LUMA_WEIGHTS, SHARP_STEP, contour_pixels

FLAT_STD = 2.0
EDGE_STEP = float(SHARP_STEP)
BLOCK = 16


def psnr_gaps(test: dict, anchor: dict) -> tuple[float, float]:
    """PSNR of the test codec minus the anchor's at the test codec's lowest and highest rate
    (the anchor's curve interpolated in log-rate; NaN outside the anchor's range)."""
    order = np.argsort(anchor["bpp"])
    log_rates = np.log(np.asarray(anchor["bpp"], dtype=np.float64)[order])
    quality = np.asarray(anchor["psnr-rgb"], dtype=np.float64)[order]
    gaps = []
    for point in (int(np.argmin(test["bpp"])), int(np.argmax(test["bpp"]))):
        rate = math.log(test["bpp"][point])
        inside = log_rates[0] <= rate <= log_rates[-1]
        gaps.append(test["psnr-rgb"][point] - float(np.interp(rate, log_rates, quality)) if inside else math.nan)
    return gaps[0], gaps[1]


def block_traits(path: Path) -> tuple[float, float, float]:
    """(share of flat blocks, share of blocks holding a sharp edge, share of pixels on contours)
    of an image's luma."""
    rgb = load_image(path, max_pixels=None)[0]
    luma = rgb.astype(np.float64) @ np.array(LUMA_WEIGHTS)
    rows, cols = luma.shape[0] // BLOCK, luma.shape[1] // BLOCK
    blocks = luma[: rows * BLOCK, : cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK).swapaxes(1, 2)
    flat = blocks.std(axis=(2, 3)) < FLAT_STD
    steps = np.maximum(
        np.abs(np.diff(blocks, axis=3)).max(axis=(2, 3)), np.abs(np.diff(blocks, axis=2)).max(axis=(2, 3))
    )
    return float(flat.mean()), float((steps > EDGE_STEP).mean()), float(contour_pixels(rgb).mean())


def side_info_shares(model_name: str, path: Path) -> tuple[float, float]:
    """The hyper-latent z's share of the estimated bits of ``path`` at the model's lowest and
    highest quality (its likelihoods in evaluation mode: the rounding the codec does)."""
    import torch

    from dcae.codecs import CodecCache
    from dcae.imageio import image_tensor, pad_image

    model = CodecCache().get(model_name).model
    x = pad_image(image_tensor(load_image(path, max_pixels=None)[0][None]), model.stride)
    shares = []
    with torch.inference_mode():
        for quality in (0.0, float(model.config.num_rate_points - 1)):
            likelihoods = model(x, quality=quality)["likelihoods"]
            bits = {name: float(-torch.log2(values).sum()) for name, values in likelihoods.items()}
            shares.append(bits["z"] / (bits["y"] + bits["z"]))
    return shares[0], shares[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("test", type=Path)
    parser.add_argument("anchor", type=Path)
    parser.add_argument("--images", type=Path, help="the evaluated folder (for the block traits)")
    parser.add_argument("--worst", type=int, default=8, help="rows printed from each end")
    parser.add_argument("--side-info", metavar="MODEL", help="also the side information's share (needs --images)")
    args = parser.parse_args()
    results = [json.loads(p.read_text()) for p in (args.test, args.anchor)]
    for path, data in zip((args.test, args.anchor), results):
        if "per_image" not in data:
            raise SystemExit(f"{path} holds no per-image results (a published curve?): use a dcae eval result file")
    test, anchor = (data["per_image"] for data in results)
    rows = []
    for image in sorted(set(test) & set(anchor)):
        t, a = test[image], anchor[image]
        value = bd_rate(a["bpp"], a["psnr-rgb"], t["bpp"], t["psnr-rgb"])
        if math.isfinite(value):
            traits = block_traits(args.images / image) if args.images else (math.nan,) * 3
            rows.append((value, image, *traits, *psnr_gaps(t, a)))
    rows.sort()
    values = [r[0] for r in rows]
    print(f"{len(rows)} images: median {statistics.median(values):+.1f}%, mean {statistics.mean(values):+.1f}%, ")
    print(f"better than the anchor on {sum(v < 0 for v in values)}\n")
    side = bool(args.side_info and args.images)
    print(
        "| image | BD-rate | dB vs anchor, lowest rate | dB, highest rate | flat blocks | edge blocks"
        + " | contour pixels |"
        + (" z share, lowest q | z share, highest q |" if side else "")
    )
    print("| --- | --- | --- | --- | --- | --- | --- |" + (" --- | --- |" if side else ""))
    shown = rows if len(rows) <= 2 * args.worst else rows[: args.worst] + rows[-args.worst :]
    for value, image, flat, edge, contour, low_gap, high_gap in shown:
        extra = ""
        if side:
            low, high = side_info_shares(args.side_info, args.images / image)
            extra = f" {low:.1%} | {high:.1%} |"
        gaps = f"{low_gap:+.2f} | {high_gap:+.2f}"
        print(f"| {image} | {value:+.1f}% | {gaps} | {flat:.0%} | {edge:.0%} | {contour:.1%} |{extra}")
    for label, column in (("lowest rate", 5), ("highest rate", 6)):
        gap = [row[column] for row in rows if math.isfinite(row[column])]
        print(f"\nmedian PSNR difference at the {label}: {statistics.median(gap):+.2f} dB ({len(gap)} images)", end="")
    print()
    if args.images and len(rows) > 2:
        for label, column in (("flat blocks", 2), ("edge blocks", 3), ("pixels on contours", 4)):
            r = np.corrcoef(values, [row[column] for row in rows])[0, 1]
            print(f"\ncorrelation of the BD-rate with the share of {label}: {r:+.2f}", end="")
        print()


if __name__ == "__main__":
    main()
