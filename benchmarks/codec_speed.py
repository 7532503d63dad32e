"""Encode/decode time and peak memory of a dcae model at three image sizes, and entropy-coding speed.

    python benchmarks/codec_speed.py [--model default] [--threads 2] [--runs 5] [--sizes 768x512 ...]
        [--machine-specific]

Each (size, direction) runs in a fresh process so its peak resident memory (ru_maxrss) is its
own; times are the median of ``--runs`` runs after one warm-up. Images are Kodak photos tiled
to the size (real content, so the entropy coder does real work).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"

CHILD = r"""
import json, resource, statistics, sys, time
import numpy as np, torch
from PIL import Image
from dcae.codec import load_codec
model, threads, runs, width, height, direction, quality, tile, portable = sys.argv[1:10]
torch.set_num_threads(int(threads))
codec = load_codec(model, tile=int(tile) or None, portable=portable == "1", max_pixels=None)
source = np.asarray(Image.open(sys.argv[10]).convert("RGB"))
reps = (int(height) // source.shape[0] + 1, int(width) // source.shape[1] + 1, 1)
image = np.ascontiguousarray(np.tile(source, reps)[: int(height), : int(width)])
q = None if quality == "none" else float(quality)
data = codec.compress(image, quality=q).data
times = []
for _ in range(int(runs) + 1):
    start = time.perf_counter()
    if direction == "encode":
        codec.compress(image, quality=q)
    else:
        codec.decompress(data)
    times.append(time.perf_counter() - start)
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
bpp = 8 * len(data) / image.shape[0] / image.shape[1]
print(json.dumps({"median_s": statistics.median(times[1:]), "peak_mb": peak_mb, "bpp": bpp}))
"""


def entropy_throughput() -> tuple[float, float]:
    """Million symbols per second for encoding and decoding Gaussian residuals."""
    import numpy as np

    from dcae.entropy.coder import SymbolDecoder, SymbolEncoder
    from dcae.entropy.tables import GaussianTables

    tables = GaussianTables()
    rng = np.random.default_rng(0)
    groups = []
    for index in range(0, tables.size, 4):
        values = np.round(rng.normal(0, tables.scales[index], 20_000)).astype(np.int64)
        groups.append((values, tables.tables[index]))
    count = sum(len(v) for v, _ in groups)
    start = time.perf_counter()
    encoder = SymbolEncoder()
    for values, table in groups:
        encoder.add(values, table)
    data = encoder.finish()
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoder = SymbolDecoder(data)
    for values, table in groups:
        decoder.take(len(values), table)
    decode_s = time.perf_counter() - start
    return count / encode_s / 1e6, count / decode_s / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quality", default="2.5", help="a rate point, or 'none' for single-rate models")
    parser.add_argument("--sizes", nargs="+", default=["768x512", "1920x1080", "3840x2160"])
    parser.add_argument("--tile", type=int, default=0, help="tile side for the transforms (0: whole image)")
    parser.add_argument("--image", default=str(KODAK / "kodim23.png"))
    parser.add_argument(
        "--machine-specific", action="store_true", help="machine-specific files (float32 entropy parameters)"
    )
    args = parser.parse_args()
    print(
        f"model {args.model}, {args.threads} threads, median of {args.runs} runs, quality {args.quality}, "
        f"tile {args.tile or 'auto'}, {'machine-specific' if args.machine_specific else 'portable'} files\n"
    )
    print("| size | encode (s) | decode (s) | encode peak (MB) | decode peak (MB) | bpp |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        width, height = size.split("x")
        row = {}
        for direction in ("encode", "decode"):
            command = [
                sys.executable,
                "-c",
                CHILD,
                args.model,
                str(args.threads),
                str(args.runs),
                width,
                height,
                direction,
                args.quality,
                str(args.tile),
                "0" if args.machine_specific else "1",
                args.image,
            ]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise SystemExit(result.stderr[-2000:])
            row[direction] = json.loads(result.stdout.strip().splitlines()[-1])
        e, d = row["encode"], row["decode"]
        print(
            f"| {size} | {e['median_s']:.2f} | {d['median_s']:.2f} | {e['peak_mb']:.0f} | {d['peak_mb']:.0f} "
            f"| {e['bpp']:.3f} |"
        )
    enc, dec = entropy_throughput()
    print(
        f"\nentropy coding (constriction rANS, Gaussian tables): encode {enc:.1f} M symbols/s, "
        f"decode {dec:.1f} M symbols/s"
    )


if __name__ == "__main__":
    main()
