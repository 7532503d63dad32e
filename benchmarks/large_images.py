"""Seconds and peak memory of `dcae compress` and `dcae decompress` from 0.4 to 81 megapixels.

    python benchmarks/large_images.py [--sizes 768x512 1600x1200 ...] [--threads 2] [--work DIR]

Each command runs as a user would run it (the CLI, default settings, a PNG in and out) in a
fresh process; its peak resident memory is the child's ru_maxrss, and its time the wall clock
of the whole command (PyTorch import, model load, PNG reading and writing included). Images are
Kodak photos tiled to the size (real content, so the entropy coder does real work); sizes above
Pillow's default pixel limit get ``--max-pixels`` raised. Pause other heavy work while it runs.

A 64x64 image is coded first: its time is the fixed cost of every command (Python, PyTorch,
the model), which the "net" columns take off before dividing by the megapixels.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"
DEFAULT_SIZES = ["768x512", "1728x1152", "3456x2304", "6000x4000", "9000x9000"]


def make_image(path: Path, width: int, height: int) -> None:
    """Kodak photos side by side, repeated to ``width`` x ``height``."""
    photos = [np.asarray(Image.open(KODAK / f"kodim{i:02d}.png").convert("RGB"))[:512, :768] for i in (1, 5, 14, 23)]
    row = np.concatenate(photos, axis=1)
    tiled = np.tile(row, (height // row.shape[0] + 1, width // row.shape[1] + 1, 1))[:height, :width]
    Image.fromarray(np.ascontiguousarray(tiled)).save(path, compress_level=1)


# Runs one command and prints its peak resident memory (kB): a child's own ru_maxrss.
MEASURE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, "
    "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def run(command: list[str]) -> tuple[float, float]:
    """(seconds, peak resident MB) of one command in a fresh process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], check=True, capture_output=True, text=True)
    return time.perf_counter() - start, int(done.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, help="WIDTHxHEIGHT ...")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dcae-large-images"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    dcae = [sys.executable, "-m", "dcae.cli"]
    env_threads = ["--threads", str(args.threads)]

    def code(size: str) -> tuple[tuple[float, float], tuple[float, float]]:
        """(seconds, peak MB) of compressing and of decompressing a ``size`` image."""
        width, height = (int(v) for v in size.split("x"))
        source = args.work / f"{size}.png"
        if not source.exists():
            make_image(source, width, height)
        coded, decoded = args.work / f"{size}.dcae", args.work / f"{size}-decoded.png"
        limit = ["--max-pixels", str(width * height)] if width * height > 89_478_485 else []
        encode = run([*dcae, "compress", str(source), "-o", str(coded), "--force", *env_threads, *limit])
        decode = run([*dcae, "decompress", str(coded), "-o", str(decoded), "--force", *env_threads, *limit])
        os.remove(decoded)
        return encode, decode

    fixed_encode, fixed_decode = (seconds for seconds, _ in code("64x64"))
    print(f"fixed cost of a command (64x64): encode {fixed_encode:.1f} s, decode {fixed_decode:.1f} s\n")
    print(
        "| size | megapixels | encode (s) | decode (s) | s/MP enc | s/MP dec | net s/MP enc | net s/MP dec "
        "| encode peak (MB) | decode peak (MB) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        megapixels = math.prod(int(v) for v in size.split("x")) / 1e6
        (encode, encode_peak), (decode, decode_peak) = code(size)
        print(
            f"| {size} | {megapixels:.1f} | {encode:.1f} | {decode:.1f} | {encode / megapixels:.2f} | "
            f"{decode / megapixels:.2f} | {(encode - fixed_encode) / megapixels:.2f} | "
            f"{(decode - fixed_decode) / megapixels:.2f} | {encode_peak:.0f} | {decode_peak:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
