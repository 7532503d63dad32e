"""Training throughput: steps and images per second for a model config on CPU (and CUDA if present).

    python benchmarks/train_speed.py [--model compact] [--patch 128] [--batch 8] [--steps 10] [--threads 1]

Runs the real training step (forward, rate-distortion and auxiliary losses, backward, clipping,
both optimisers) on random crops; prints the median over ``--steps`` after two warm-up steps.
On CUDA it also times bf16 autocast and, with ``--compile``, torch.compile.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dcae import build_model
from dcae.losses import RateDistortionLoss


def time_steps(model_name: str, device: str, patch: int, batch: int, steps: int, amp: bool, compile_: bool) -> float:
    torch.manual_seed(0)
    model = build_model(model_name).to(device).train()
    net = torch.compile(model) if compile_ else model
    optimizer = torch.optim.Adam(model.main_parameters(), lr=1e-4)
    aux_optimizer = torch.optim.Adam(model.aux_parameters(), lr=1e-3)
    criterion = RateDistortionLoss(0.01)
    points = model.config.num_rate_points
    x = torch.rand(batch, 3, patch, patch, device=device)
    times = []
    for _ in range(steps + 2):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        quality = torch.randint(points, (batch,), device=device).float() if points else None
        optimizer.zero_grad(set_to_none=True)
        aux_optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            out = net(x, quality=quality)
        loss = criterion(out, x)["loss"] + model.aux_loss()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.main_parameters(), 1.0)
        optimizer.step()
        aux_optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="compact")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = [("cpu", False, False)]
    if torch.cuda.is_available():
        runs += [("cuda", False, False), ("cuda", True, False)]
        if args.compile:
            runs.append(("cuda", True, True))
    print(
        f"model {args.model}, batch {args.batch} x {args.patch}x{args.patch}, {args.threads} CPU threads, "
        f"median of {args.steps} steps\n"
    )
    print("| device | bf16 | compile | s/step | steps/s | images/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for device, amp, compile_ in runs:
        seconds = time_steps(args.model, device, args.patch, args.batch, args.steps, amp, compile_)
        print(f"| {device} | {amp} | {compile_} | {seconds:.3f} | {1 / seconds:.2f} | {args.batch / seconds:.1f} |")


if __name__ == "__main__":
    main()
