"""Training throughput of the real trainer step, for several batch sizes, on CPU and CUDA.

    python benchmarks/train_speed.py [--config configs/compact-gpu.toml] [--batch 8 16 32]
        [--patch 256] [--steps 10] [--threads 1] [--devices cpu cuda] [--bf16] [--compile]
        [--channels-last] [--json results.json]

Each row builds a :class:`dcae.training.Trainer` from the config (random weights, the config's
lambdas and rate sampling) and times ``Trainer.train_step`` on one fixed random batch: forward,
rate-distortion and auxiliary losses, backward, clipping, both optimisers, exactly as training
runs them, without data loading (the trainer's loader decodes from memory in worker processes).
Prints the median over ``--steps`` after two warm-up steps. On CUDA, products use TensorFloat-32
as in training; ``--bf16`` adds rows with bf16 autocast, ``--compile`` rows with torch.compile,
``--channels-last`` a channels-last twin of every bf16 row.
``scripts/gpu_train.sh`` runs it to choose its batch size on the machine it gets.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dcae.training import Trainer, load_train_config


def time_steps(
    config_path: str,
    device: str,
    batch: int,
    patch: int,
    steps: int,
    amp: bool,
    compile_: bool,
    channels_last: bool = False,
) -> float:
    """Median seconds of one training step."""
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder, "data")
        data.mkdir()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (patch, patch, 3), dtype=np.uint8)).save(
            data / "noise.png"
        )
        overrides = {
            "train_data": str(data),
            "val_data": "",
            "holdout": 0,
            "out": str(Path(folder, "run")),
            "device": device,
            "amp": "bf16" if amp else "off",
            "compile": compile_,
            "channels_last": channels_last,
            "batch_size": batch,
            "patch": patch,
            "workers": 0,
        }
        torch.manual_seed(0)
        trainer = Trainer(load_train_config(config_path, overrides), command="benchmarks/train_speed.py")
        x = torch.rand(batch, 3, patch, patch)
        if device == "cuda":
            x = x.pin_memory()
        times = []
        for _ in range(steps + 2):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            trainer.train_step(x)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        del trainer
        if device == "cuda":
            torch.cuda.empty_cache()
        return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/compact-gpu.toml", help="training config (TOML)")
    parser.add_argument("--batch", type=int, nargs="+", default=[8])
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--devices", nargs="+", choices=("cpu", "cuda"), help="default: cpu, and cuda if present")
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile with bf16")
    parser.add_argument("--channels-last", action="store_true", help="also time bf16 rows in channels-last layout")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if "cuda" in devices and not torch.cuda.is_available():
        parser.error("--devices cuda: no CUDA device on this machine")
    variants = []
    for device in devices:
        variants.append((device, False, False, False))
        bf16_variants = ([False] if args.bf16 else []) + ([True] if args.compile else [])  # compiled or not
        for compile_ in bf16_variants:
            variants.append((device, True, compile_, False))
            if args.channels_last:
                variants.append((device, True, compile_, True))
    crops = f"{args.patch}x{args.patch} crops"
    print(f"config {args.config}, {crops}, {args.threads} CPU threads, median of {args.steps} steps\n")
    print("| device | batch | bf16 | compile | channels last | s/step | steps/s | images/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for device, amp, compile_, channels_last in variants:
        for batch in args.batch:
            settings = f"{device} | {batch} | {amp} | {compile_} | {channels_last}"
            try:
                seconds = time_steps(args.config, device, batch, args.patch, args.steps, amp, compile_, channels_last)
            except torch.cuda.OutOfMemoryError:  # a batch too large for the device is a result, not a failure
                torch.cuda.empty_cache()
                print(f"| {settings} | out of memory | | |", flush=True)
                continue
            row = {
                "device": device,
                "batch": batch,
                "bf16": amp,
                "compile": compile_,
                "channels_last": channels_last,
                "seconds": seconds,
            }
            rows.append(row)
            speeds = f"{seconds:.3f} | {1 / seconds:.2f} | {batch / seconds:.1f}"
            print(f"| {settings} | {speeds} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
