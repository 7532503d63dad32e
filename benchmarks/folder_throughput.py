"""Coding a folder: images per second for the 24 Kodak photos, several ways.

    python benchmarks/folder_throughput.py [--images 24]

Compares one ``dcae`` process per file (what a shell loop does), one process coding every file
in turn with all threads (``--jobs 1``), and worker processes sharing the CPUs (``--jobs N``, the
default for many files), for ``dcae compress`` and ``dcae decompress``. Wall-clock times include
starting Python, importing PyTorch and loading the model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"
DCAE = [sys.executable, "-m", "dcae.cli"]


def run(argv: list[str]) -> None:
    subprocess.run([*DCAE, *argv], check=True, capture_output=True)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    args = parser.parse_args()
    images = sorted(KODAK.glob("*.png"))[: args.images]
    cpus = len(os.sched_getaffinity(0))
    work = Path(tempfile.mkdtemp())
    rows = []
    try:
        coded = work / "coded"
        coded.mkdir()
        seconds = timed(lambda: [run(["compress", str(p), "-o", str(coded / f"{p.stem}.dcae")]) for p in images])
        rows.append(("compress", "one process per file", seconds))
        files = sorted(coded.glob("*.dcae"))
        back = work / "back"
        back.mkdir()
        seconds = timed(lambda: [run(["decompress", str(f), "-o", str(back / f"{f.stem}.png")]) for f in files])
        rows.append(("decompress", "one process per file", seconds))
        for jobs in (1, cpus):
            label = f"one process, --jobs {jobs}" + (" (default)" if jobs == cpus else "")
            out = work / f"c{jobs}"
            seconds = timed(
                lambda out=out, jobs=jobs: run(["compress", *map(str, images), "-o", f"{out}/", "--jobs", str(jobs)])
            )
            rows.append(("compress", label, seconds))
            out_png = work / f"d{jobs}"
            seconds = timed(
                lambda out=out, out_png=out_png, jobs=jobs: run(
                    ["decompress", *map(str, sorted(out.glob("*.dcae"))), "-o", f"{out_png}/", "--jobs", str(jobs)]
                )
            )
            rows.append(("decompress", label, seconds))
    finally:
        shutil.rmtree(work)
    print(f"{len(images)} Kodak images (768x512), {cpus} CPUs, portable files, wall-clock including start-up\n")
    print("| command | how | seconds | images/s |")
    print("| --- | --- | --- | --- |")
    for command, label, seconds in rows:
        print(f"| {command} | {label} | {seconds:.1f} | {len(images) / seconds:.2f} |")


if __name__ == "__main__":
    main()
