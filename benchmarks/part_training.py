"""What a training step costs when only one part of the model learns, on cached latents.

    python benchmarks/part_training.py [--weights src/dcae/zoo/weights/compact-mse-v1.safetensors]
        [--parts all synthesis entropy] [--batch 8] [--patch 256] [--steps 20] [--threads 1]
        [--compile]

Each row builds the real :class:`dcae.training.Trainer` from ``configs/compact-cpu.toml``'s recipe
(bf16 autocast, one thread) on the given weights and times ``Trainer.train_step`` on batches
from its own loader (data loading included): random crops of a few photos for ``all``, the cached crops and analysis
features for a part (the cache is built first, and its cost per crop is printed apart). Prints
the median step and the ratio of steps per CPU-second to the whole model's. Run it with other
heavy work paused.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from dcae.training import Trainer, load_train_config

KODAK_FREE_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "train"


def time_part(
    part: str, weights: str, batch: int, patch: int, steps: int, threads: int, compile_: bool
) -> tuple[float, float]:
    """(median CPU seconds of a step with its data, CPU seconds of building the cache per crop)."""
    with tempfile.TemporaryDirectory() as folder:
        overrides = {
            "init_from": weights,
            "train_data": str(KODAK_FREE_PHOTOS),
            "holdout": 1350,  # a few dozen photos are enough to time steps
            "val_data": "",
            "val_images": 1,
            "out": str(Path(folder, "run")),
            "batch_size": batch,
            "patch": patch,
            "compile": compile_,
            "train_parts": part,
            "cache_crops": 2,
            "threads": threads,
        }
        config = load_train_config("configs/compact-cpu.toml", overrides)
        start = time.process_time()
        trainer = Trainer(config, command="benchmarks/part_training.py")
        building = time.process_time() - start
        loader = iter(trainer.loader())
        times = []
        for _ in range(steps + 3):
            start = time.process_time()
            trainer.train_step(next(loader))
            times.append(time.process_time() - start)
        crops = len(trainer.dataset) if part != "all" else 0
        return statistics.median(times[3:]), building / crops if crops else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="src/dcae/zoo/weights/compact-mse-v1.safetensors")
    parser.add_argument("--parts", nargs="+", default=["all", "synthesis", "entropy"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", action="store_true", help="torch.compile, as the CPU recipe trains")
    args = parser.parse_args()
    print(f"batch {args.batch} of {args.patch}x{args.patch}, bf16, {args.threads} thread(s), median of {args.steps}\n")
    print("| trained | CPU s/step | steps per CPU-hour | vs whole model | cache build (CPU s/crop) |")
    print("| --- | --- | --- | --- | --- |")
    whole = None
    for part in args.parts:
        seconds, per_crop = time_part(
            part, args.weights, args.batch, args.patch, args.steps, args.threads, args.compile
        )
        whole = seconds if part == "all" else whole
        ratio = f"{whole / seconds:.2f}x" if whole else "-"
        cache = f"{per_crop:.3f}" if part != "all" else "-"
        print(f"| {part} | {seconds:.3f} | {3600 / seconds:.0f} | {ratio} | {cache} |", flush=True)


if __name__ == "__main__":
    main()
