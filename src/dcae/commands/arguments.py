"""Command-line arguments: the parser whose usage errors are user mistakes, value types, and the
flags several commands share."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from ..effort import EFFORT_STEPS
from ..errors import EXIT_USER_ERROR, UsageError


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are user mistakes: one line, exit status 1 (not 2)."""

    def error(self, message: str) -> NoReturn:
        command = "" if self.prog == "dcae" else f"{self.prog.removeprefix('dcae ')}: "
        print(f"dcae: error: {command}{message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def positive_number(text: str) -> float:
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def whole(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def size(text: str) -> int:
    """Bytes from '20000', '20k' (x1000) or '1.5M' (x10^6)."""
    factors = {"k": 1_000, "m": 1_000_000}
    factor = factors.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if factor > 1 else text) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 20000, 20k or 1.5M)") from None
    if not math.isfinite(value) or value < 1 or value > 2**40:
        raise argparse.ArgumentTypeError(f"not a usable size: {text!r} (1 byte .. 1 TB)")
    return int(value)


def add_model_flag(p: argparse.ArgumentParser, default: "str | None" = "default") -> None:
    text = "released model name (see `dcae models`) or weights file"
    p.add_argument("--model", default=default, help=f"{text} (default: {default or 'the model that wrote the file'})")


def add_runtime_flags(p: argparse.ArgumentParser, jobs: bool = False) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument(
        "--threads",
        type=whole(1),
        help="torch threads (default: $DCAE_THREADS, else $OMP_NUM_THREADS, else every CPU this process may use)",
    )
    if jobs:
        p.add_argument(
            "--jobs",
            type=whole(1),
            help="worker processes for many files, splitting the threads (default: one per CPU, at most one per file)",
        )
    p.add_argument(
        "--max-pixels",
        type=whole(0),
        help="refuse images above this many pixels (default: Pillow's limit, about 89 million; 0: no limit)",
    )


def add_effort_flags(p: argparse.ArgumentParser) -> None:
    effort = p.add_mutually_exclusive_group()
    levels = ", ".join(f"{level}: {steps}" for level, steps in enumerate(EFFORT_STEPS))
    effort.add_argument(
        "--effort",
        type=whole(0),
        help=f"encoder effort 0..{len(EFFORT_STEPS) - 1}: smaller files for more encoding time "
        f"(latent optimisation steps per level: {levels}; decoding unchanged; default 0)",
    )
    effort.add_argument(
        "--optimize",
        type=whole(0),
        metavar="STEPS",
        help="the same as --effort with any number of latent optimisation steps (images up to 1536x1536)",
    )


def optimize_steps(args: argparse.Namespace) -> int:
    """Latent optimisation steps of ``--effort`` or ``--optimize``."""
    if args.effort is not None:
        if args.effort >= len(EFFORT_STEPS):
            raise UsageError(f"--effort is 0..{len(EFFORT_STEPS) - 1}, not {args.effort}")
        return EFFORT_STEPS[args.effort]
    return args.optimize or 0


def torch_device(text: str) -> Any:
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        raise UsageError(f"unknown device {text!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but no CUDA device is available")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"unsupported device {text!r}; use cpu, cuda or cuda:N")
    return device
