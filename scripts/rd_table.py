"""Print the Markdown tables of the model card and README from a `dcae eval` output folder.

    python scripts/rd_table.py eval/kodak

Prints the short per-quality table (README), the long one with MS-SSIM in dB and timings
(docs/models.md) and the one-line BD-rate summary against the classic codecs, so the published
figures are copied from the measurement rather than typed.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

SUMMARY_ANCHORS = {"jpeg-420": "JPEG 4:2:0", "jpeg-444": "JPEG 4:4:4", "webp": "WebP", "avif-444": "AVIF 4:4:4"}


def percent(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:+.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_dir", type=Path)
    args = parser.parse_args()
    results = json.loads((args.eval_dir / "dcae.json").read_text())["results"]
    rows = list(
        zip(
            results["quality"],
            results["bpp"],
            results["psnr-rgb"],
            results["ms-ssim-rgb"],
            results["ms-ssim-rgb-db"],
            results["encoding_time"],
            results["decoding_time"],
        )
    )
    print("| quality | bpp | PSNR (dB) | MS-SSIM |\n| --- | --- | --- | --- |")
    for quality, bpp, psnr, msssim, *_ in rows:
        print(f"| {quality:g} | {bpp:.3f} | {psnr:.2f} | {msssim:.3f} |")
    print()
    print("| quality | bpp | PSNR (dB) | MS-SSIM | MS-SSIM (dB) | encode (s) | decode (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for quality, bpp, psnr, msssim, msssim_db, encode, decode in rows:
        cells = [f"{quality:g}", f"{bpp:.4f}", f"{psnr:.2f}", f"{msssim:.4f}", f"{msssim_db:.2f}"]
        print("| " + " | ".join(cells + [f"{encode:.2f}", f"{decode:.2f}"]) + " |")
    print()
    table = {row["anchor"]: row for row in json.loads((args.eval_dir / "bd_table.json").read_text())}
    parts = [
        f"{label} {percent(table[key]['bd_rate_psnr'])} / {percent(table[key]['bd_rate_msssim'])}"
        for key, label in SUMMARY_ANCHORS.items()
        if key in table
    ]
    print("BD-rate (PSNR / MS-SSIM dB): " + ", ".join(parts))


if __name__ == "__main__":
    main()
