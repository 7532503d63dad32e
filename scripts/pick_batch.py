"""Choose a training batch size and learning rate from a throughput probe.

    python scripts/pick_batch.py PROBE.json --base-batch 16 --base-lr 1e-4

PROBE.json is what ``benchmarks/train_speed.py --json`` wrote. The smallest batch is the start;
a larger one replaces the current choice only if it trains at least ``--min-gain`` (default 15%)
more images per second: when a bigger batch costs as much time per image, more optimiser steps
are worth more. The learning rate follows the square root of the batch-size ratio to the
configuration the model was trained with (a common rule for Adam). Prints ``BATCH LR``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def choose_batch(rows: list[dict], min_gain: float = 0.15) -> int:
    """The batch size to train with, from probe rows (float32, uncompiled rows only)."""
    speeds = sorted(
        (row["batch"], row["batch"] / row["seconds"]) for row in rows if not row["bf16"] and not row["compile"]
    )
    if not speeds:
        raise ValueError("the probe holds no float32 measurement")
    batch, best = speeds[0]
    for candidate, images_per_s in speeds[1:]:
        if images_per_s >= (1 + min_gain) * best:
            batch, best = candidate, images_per_s
    return batch


def scaled_lr(batch: int, base_batch: int, base_lr: float) -> float:
    """``base_lr`` scaled by the square root of ``batch / base_batch``."""
    return base_lr * math.sqrt(batch / base_batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probe", type=Path)
    parser.add_argument("--base-batch", type=int, required=True)
    parser.add_argument("--base-lr", type=float, required=True)
    parser.add_argument("--min-gain", type=float, default=0.15)
    args = parser.parse_args()
    batch = choose_batch(json.loads(args.probe.read_text()), args.min_gain)
    print(batch, f"{scaled_lr(batch, args.base_batch, args.base_lr):.3g}")


if __name__ == "__main__":
    main()
