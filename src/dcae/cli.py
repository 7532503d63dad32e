"""The ``dcae`` command line: compress, decompress, inspect, train, evaluate.

Exit status: 0 done, 1 a mistake the user can fix (one ``dcae: error:`` line, usage errors
included), 2 an internal error (a bug: one ``dcae: internal error:`` line), 130 interrupted.
Outputs are planned and checked before any work, written to a temporary file and renamed;
nothing is overwritten without ``--force``, and an output never replaces an input.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .errors import DcaeError
from .memory import return_large_blocks_to_the_system
from .outputs import decoded_name, plan_outputs
from .runtime import thread_count

EXIT_OK, EXIT_USER_ERROR, EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class UserError(DcaeError):
    """A mistake on the command line; reported as one line, exit status 1."""


# Mistakes a user can fix. The tuple imports nothing but the errors module, so reporting a
# mistake can never fail on an import.
USER_ERRORS = (DcaeError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are user mistakes: one line, exit status 1 (not 2)."""

    def error(self, message: str) -> NoReturn:
        command = "" if self.prog == "dcae" else f"{self.prog.removeprefix('dcae ')}: "
        print(f"dcae: error: {command}{message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


# ---------------------------------------------------------------------------------- arguments
def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _positive_number(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _whole(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _size(text: str) -> int:
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


def _add_model_flag(p: argparse.ArgumentParser, default: "str | None" = "default") -> None:
    text = "released model name (see `dcae models`) or weights file"
    p.add_argument("--model", default=default, help=f"{text} (default: {default or 'the model that wrote the file'})")


def _add_runtime_flags(p: argparse.ArgumentParser, jobs: bool = False) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument(
        "--threads",
        type=_whole(1),
        help="torch threads (default: $DCAE_THREADS, else $OMP_NUM_THREADS, else every CPU this process may use)",
    )
    if jobs:
        p.add_argument(
            "--jobs",
            type=_whole(1),
            help="worker processes for many files, splitting the threads (default: one per CPU, at most one per file)",
        )
    p.add_argument(
        "--max-pixels",
        type=_whole(0),
        help="refuse images above this many pixels (default: Pillow's limit, about 89 million; 0: no limit)",
    )


# ------------------------------------------------------------------------------------ outputs
class _CountingFile:
    """A binary file that reports how many bytes were written so far (Pillow writes as it encodes)."""

    def __init__(self, handle: Any, on_write: Callable[[int], None]) -> None:
        self.handle, self.on_write, self.written = handle, on_write, 0

    def write(self, data: bytes) -> int:
        self.written += len(data)
        self.on_write(self.written)
        return self.handle.write(data)

    def __getattr__(self, name: str) -> Any:  # seek, tell, flush ... of the real file
        return getattr(self.handle, name)


def _write_output(
    path: Path, data: "bytes | None", force: bool, image: Any = None, on_write: "Callable[[int], None] | None" = None
) -> None:
    """Write ``data``, or ``image`` in the format its suffix names, by the output policy."""
    from .outputs import write_output

    if image is not None:
        formats = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
        kind = formats.get(path.suffix.lower(), "PNG")
        options = {"quality": 95} if kind in ("JPEG", "WEBP") else {}

        def save(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                image.save(handle if on_write is None else _CountingFile(handle, on_write), format=kind, **options)

        write_output(path, save, force)
    else:
        write_output(path, lambda tmp: Path(tmp).write_bytes(data), force)


# What one worker (or the command itself) does to one file: (path, output, state, args) -> line.
FileWork = Callable[[Path, Path, dict, argparse.Namespace], str]


def _code_files(work: FileWork, pairs: list[tuple[Path, Path]], args: argparse.Namespace, what: str) -> int:
    """Run ``work`` on every (input, output) pair, with a progress bar; failures one line each.
    The number of failures is returned. ``state`` holds what the files share (loaded codecs)."""
    from tqdm import tqdm

    from .runtime import torch_threads

    state: dict = {}
    failures = 0
    with torch_threads(args.threads):
        for path, output in tqdm(pairs, desc=what, unit="file", disable=len(pairs) < 2, file=sys.stderr):
            try:
                tqdm.write(work(path, output, state, args))
            except USER_ERRORS as error:
                failures += 1
                tqdm.write(f"dcae: error: {path}: {error}", file=sys.stderr)
    return failures


def _code_files_in_worker(work: FileWork, pairs: list[tuple[Path, Path]], args: argparse.Namespace, what: str) -> int:
    """:func:`_code_files` in a worker process: warnings as one line; stopped (SIGTERM, Ctrl-C)
    it leaves at once, its temporary file already removed on the way out."""
    warnings.showwarning = _show_warning
    try:
        return _code_files(work, pairs, args, what)
    except KeyboardInterrupt:
        os._exit(EXIT_INTERRUPTED)


def _for_each(work: FileWork, pairs: list[tuple[Path, Path]], args: argparse.Namespace, what: str) -> int:
    """Code every file in this process or, for several files, in worker processes that share the
    CPUs (``--jobs``): a worker with one thread per CPU keeps every core busy where the network's
    own threads would wait on each other (benchmarks/folder_throughput.py). Stopping the command
    stops the workers at once."""
    from .runtime import worker_pool

    cpus = thread_count(args.threads)
    jobs = min(args.jobs or cpus, len(pairs), cpus) if len(pairs) > 1 else 1
    if jobs == 1:
        failures = _code_files(work, pairs, argparse.Namespace(**{**vars(args), "threads": cpus}), what)
        return EXIT_USER_ERROR if failures else EXIT_OK
    worker_args = argparse.Namespace(**{**vars(args), "threads": max(1, cpus // jobs), "handler": None})
    chunks = [pairs[i::jobs] for i in range(jobs)]
    pool = worker_pool(jobs)
    try:
        running = [
            pool.apply_async(_code_files_in_worker, (work, chunk, worker_args, f"{what} {i + 1}/{jobs}"))
            for i, chunk in enumerate(chunks)
        ]
        failures = sum(result.get() for result in running)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return EXIT_USER_ERROR if failures else EXIT_OK


def _read_file(path: Path) -> bytes:
    from .files import check_readable

    check_readable(path)
    return path.read_bytes()


# A command's progress bar appears only once it has run this long (seconds).
PROGRESS_DELAY = 2.0


class _Progress:
    """One progress bar on standard error for one file's whole operation, through every stage
    (the stage is its label); only on a terminal, and only once the operation runs longer than
    :data:`PROGRESS_DELAY`."""

    def __init__(self, label: str, delay: "float | None" = None) -> None:
        self.label, self.bar = label, None
        self.delay = PROGRESS_DELAY if delay is None else delay
        self.shown = sys.stderr.isatty()
        self.coded: "int | None" = None  # the bar's count when writing began

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.shown:
            return
        from tqdm import tqdm

        description = f"{self.label}: {stage}"
        if self.bar is None:
            self.bar = tqdm(total=total, desc=description, file=sys.stderr, leave=False, delay=self.delay)
        elif self.bar.desc != description:
            self.bar.set_description(description)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def writing(self, written: int, expected: int) -> None:
        """The output being written, as a last tenth of the bar (``expected``: about its bytes)."""
        if self.bar is None:
            return
        if self.coded is None:  # the first write: extend the bar by a tenth
            self.coded = self.bar.total
            self.bar.total += max(1, self.coded // 10)
            self.bar.set_description(f"{self.label}: writing")
        share = self.bar.total - self.coded
        self.bar.update(self.coded + min(share - 1, share * written // max(expected, 1)) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ------------------------------------------------------------------------------- codec commands
def _add_codec_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="compress images to .dcae files")
    p.add_argument("inputs", nargs="+", help="images (PNG, JPEG, WebP, TIFF, BMP)")
    p.add_argument("-o", "--output", help="output file (one input) or folder (several inputs, or ending in /)")
    _add_model_flag(p)
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--quality", type=_number, help="rate point; higher is better quality and larger files")
    rate.add_argument("--target-bpp", type=_positive_number, help="largest bits per pixel of the file")
    rate.add_argument("--target-size", type=_size, help="largest file size, e.g. 20000, 20k or 1.5M bytes")
    p.add_argument("--roi", metavar="MASK", help="region of interest: an image of the same size, non-zero inside")
    p.add_argument("--roi-quality", type=_number, metavar="Q", help="quality inside --roi (outside: --quality)")
    _add_runtime_flags(p, jobs=True)
    p.add_argument(
        "--machine-specific",
        action="store_true",
        help="faster files that decode only on machines computing like this one (entropy model in float32)",
    )
    _add_effort_flags(p)
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(handler=_run_compress)

    p = sub.add_parser("decompress", help="decode .dcae files to images")
    p.add_argument("inputs", nargs="+", help=".dcae files")
    p.add_argument("-o", "--output", help="output image (one input) or folder; format from the suffix (PNG default)")
    _add_model_flag(p, default=None)
    p.add_argument("--preview", type=_whole(0), metavar="K", help="decode only the first K latent slices")
    p.add_argument("--onnx", metavar="DIR", help="run the synthesis in onnxruntime from `dcae export --onnx DIR`")
    _add_runtime_flags(p, jobs=True)
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(handler=_run_decompress)

    p = sub.add_parser("info", help="describe a .dcae file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_run_info)

    p = sub.add_parser("models", help="list the released models")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_run_models)

    p = sub.add_parser("roundtrip", help="compress and decompress an image; print size, bpp, PSNR and timings")
    p.add_argument("image")
    _add_model_flag(p)
    p.add_argument("--quality", type=_number, help="rate point (default: the middle of the model's range)")
    _add_runtime_flags(p)
    p.add_argument("--machine-specific", action="store_true", help="code as `compress --machine-specific` does")
    _add_effort_flags(p)
    p.add_argument("--save", metavar="PNG", help="also write the decoded image here")
    p.add_argument("--force", action="store_true", help="overwrite the --save file")
    p.set_defaults(handler=_run_roundtrip)


def _add_effort_flags(p: argparse.ArgumentParser) -> None:
    from .effort import EFFORT_STEPS

    effort = p.add_mutually_exclusive_group()
    levels = ", ".join(f"{level}: {steps}" for level, steps in enumerate(EFFORT_STEPS))
    effort.add_argument(
        "--effort",
        type=_whole(0),
        help=f"encoder effort 0..{len(EFFORT_STEPS) - 1}: smaller files for more encoding time "
        f"(latent optimisation steps per level: {levels}; decoding unchanged; default 0)",
    )
    effort.add_argument(
        "--optimize",
        type=_whole(0),
        metavar="STEPS",
        help="the same as --effort with any number of latent optimisation steps (images up to 1536x1536)",
    )


def _optimize_steps(args: argparse.Namespace) -> int:
    """Latent optimisation steps of ``--effort`` or ``--optimize``."""
    from .effort import EFFORT_STEPS

    if args.effort is not None:
        if args.effort >= len(EFFORT_STEPS):
            raise UserError(f"--effort is 0..{len(EFFORT_STEPS) - 1}, not {args.effort}")
        return EFFORT_STEPS[args.effort]
    return args.optimize or 0


def _torch_device(text: str) -> Any:
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        raise UserError(f"unknown device {text!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but no CUDA device is available")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {text!r}; use cpu, cuda or cuda:N")
    return device


def _codecs(args: argparse.Namespace, state: dict) -> Any:
    """The command's codec cache (one per process: the command's, or a worker's)."""
    from .codecs import CodecCache

    if "codecs" not in state:
        state["codecs"] = CodecCache(device=_torch_device(args.device))
    return state["codecs"]


def _options(args: argparse.Namespace, **options: Any) -> dict[str, Any]:
    """Codec options from the runtime flags, plus ``options``."""
    if args.max_pixels is not None:
        options["max_pixels"] = args.max_pixels or None
    return options


def _run_compress(args: argparse.Namespace) -> int:
    inputs = [Path(p) for p in args.inputs]
    outputs = plan_outputs(inputs, args.output, ".dcae", args.force)
    _torch_device(args.device)  # a wrong device is one error, not one per file
    return _for_each(_compress_file, list(zip(inputs, outputs)), args, "compress")


def _compress_file(path: Path, output: Path, state: dict, args: argparse.Namespace) -> str:
    options = _options(args, portable=not args.machine_specific, optimize_steps=_optimize_steps(args))
    codec = _codecs(args, state).get(args.model, **options)
    rate = {"quality": args.quality, "target_bpp": args.target_bpp, "target_size": args.target_size}
    if args.roi is not None:
        rate = {"quality_map": _roi_map(path, args, codec)}
    progress = _Progress(str(path))
    try:
        result = codec.compress(path, progress=progress, **rate)
    finally:
        progress.close()
    _write_output(output, result.data, args.force)
    quality = f", quality {result.header.quality:.3f}" if result.header.quality is not None else ""
    return f"{path} -> {output}: {len(result.data)} bytes, {result.bpp:.4f} bpp{quality}, {result.seconds:.2f} s"


def _roi_map(path: Path, args: argparse.Namespace, codec: Any) -> Any:
    """The quality map of ``--roi MASK --roi-quality Q`` (outside the mask: ``--quality``)."""
    import numpy as np
    from PIL import Image

    from .imageio import load_image
    from .quality_map import roi_quality_map

    if args.roi_quality is None or args.target_bpp is not None or args.target_size is not None:
        raise UserError("--roi needs --roi-quality (and --quality for outside it, not a rate target)")
    image, _ = load_image(path, codec.options.max_pixels)
    mask, _ = load_image(Path(args.roi), codec.options.max_pixels)
    if mask.shape != image.shape:
        raise UserError(
            f"the --roi mask is {mask.shape[1]}x{mask.shape[0]}, the image {image.shape[1]}x{image.shape[0]}"
        )
    inside = np.asarray(Image.fromarray(mask).convert("L")) > 127
    outside = codec.check_quality(args.quality)
    return roi_quality_map(inside, outside, args.roi_quality)


def _run_decompress(args: argparse.Namespace) -> int:
    from . import bitstream

    inputs = [Path(p) for p in args.inputs]
    if len(inputs) == 1:  # a foreign or damaged file is reported before PyTorch loads
        bitstream.unpack(_read_file(inputs[0]))
    outputs = plan_outputs(
        inputs, args.output, ".png", args.force, lambda path: decoded_name(path, preview_slices=args.preview)
    )
    _torch_device(args.device)
    return _for_each(_decompress_file, list(zip(inputs, outputs)), args, "decompress")


def _decompress_file(path: Path, output: Path, state: dict, args: argparse.Namespace) -> str:
    data = _read_file(path)
    codec = _codecs(args, state).for_file(data, args.model, **_options(args, onnx_synthesis=args.onnx))
    progress = _Progress(str(path))
    try:
        decoded = codec.decompress(data, preview_slices=args.preview, progress=progress)
        image = decoded.to_pil()
        expected = decoded.pixels.nbytes // 2  # about a photo's PNG: enough to keep the bar moving
        _write_output(output, None, args.force, image, lambda written: progress.writing(written, expected))
    finally:
        progress.close()
    return f"{path} -> {output}: {image.width}x{image.height} {image.mode}, {decoded.seconds:.2f} s"


def _run_info(args: argparse.Namespace) -> int:
    import json

    from . import bitstream
    from .zoo import find_by_digest

    data = _read_file(Path(args.file))
    header, payload = bitstream.unpack(data)
    entry = find_by_digest(header.digest)
    info = {
        "file": args.file,
        "bytes": len(data),
        "header_bytes": bitstream.header_size(header),
        "payload_bytes": len(payload),
        "width": header.width,
        "height": header.height,
        "bpp": round(8 * len(data) / header.num_pixels, 4),
        "colour_mode": header.colour_mode.name,
        "padding": header.pad_mode.name.lower(),
        "quality": header.quality,
        "architecture": header.architecture,
        "model_digest": header.digest.hex(),
        "model": entry.name if entry else None,
        "scale_table_size": header.scale_table_size,
        "slices": header.num_slices,
        "format_version": header.format_version,
        "portable": header.portable,
        "latent_checksum": None if header.latent_checksum is None else f"{header.latent_checksum:08x}",
        "quality_map": None
        if header.quality_map is None
        else {
            "levels": list(header.quality_map.levels),
            "blocks": [header.quality_map.indexes.count(i) for i in range(len(header.quality_map.levels))],
        },
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return EXIT_OK


def _run_models(args: argparse.Namespace) -> int:
    import json

    from .weights import read_metadata
    from .zoo import ALIASES, RELEASES

    rows = []
    for entry in reversed(list(RELEASES.values())):  # newest first
        row = {
            "name": entry.name,
            "aliases": [alias for alias, target in ALIASES.items() if target == entry.name],
            "digest": entry.digest,
            "released": entry.released,
            "training_steps": entry.training_steps,
            "installed": entry.available,
            "description": entry.description,
        }
        if entry.available:
            points = read_metadata(entry.path).get("config", {}).get("num_rate_points")
            row.update(rate_points=points, path=str(entry.path))
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            name = row["name"] + "".join(f" ({alias})" for alias in row["aliases"])
            state = "" if row["installed"] else ", not installed"
            print(
                f"{name:<26} {row['digest'][:16]}  released {row['released']}, "
                f"{row['training_steps']:,} training steps{state}: {row['description']}"
            )
    return EXIT_OK


def _run_roundtrip(args: argparse.Namespace) -> int:
    from .runtime import torch_threads

    save = Path(args.save) if args.save else None
    if save is not None:
        plan_outputs([Path(args.image)], args.save, save.suffix or ".png", args.force)
    with torch_threads(thread_count(args.threads)):
        return _roundtrip(args, save)


def _roundtrip(args: argparse.Namespace, save: "Path | None") -> int:
    from .imageio import load_image
    from .metrics import msssim, psnr

    options = _options(args, portable=not args.machine_specific, optimize_steps=_optimize_steps(args))
    codec = _codecs(args, {}).get(args.model, **options)
    array, _ = load_image(Path(args.image), max_pixels=codec.options.max_pixels)
    compressed = codec.compress(array, quality=args.quality)
    decoded = codec.decompress(compressed.data)
    header = compressed.header
    quality = f", quality {header.quality:.3f}" if header.quality is not None else ""
    line = (
        f"{args.image}: {header.width}x{header.height}, model {codec.name}{quality}: {len(compressed.data)} bytes, "
        f"{compressed.bpp:.4f} bpp, PSNR {psnr(array, decoded.pixels):.2f} dB"
    )
    similarity = msssim(array, decoded.pixels)
    if similarity is not None:
        line += f", MS-SSIM {similarity:.4f}"
    print(line + f"; encode {compressed.seconds:.2f} s, decode {decoded.seconds:.2f} s")
    if save is not None:
        from .imageio import to_pil

        _write_output(save, None, args.force, to_pil(decoded.pixels, header.colour_mode))
    return EXIT_OK


# -------------------------------------------------------------------------------------- train
def _add_train(sub: argparse._SubParsersAction) -> None:
    from dataclasses import fields

    from .training.config import TrainConfig

    p = sub.add_parser("train", help="train a model (one CPU, one GPU, or many GPUs under torchrun)")
    p.add_argument("config", nargs="?", help="TOML training config (see configs/); flags override its values")
    # One flag per config field, from its declaration; checked with the config (TrainConfig.validate).
    shapes: dict[str, dict[str, Any]] = {
        "int": {"type": _integer},
        "float": {"type": _number},
        "str": {},
        "model": {},
        "bool": {"action": "store_true", "default": None},
        "floats": {"type": _number, "nargs": "+"},
        "ints": {"type": _integer, "nargs": "*"},
        "pair": {"type": _number, "nargs": 2, "metavar": ("LOW", "HIGH")},
    }
    for item in fields(TrainConfig):
        meta = item.metadata
        choices = {"choices": meta["choices"]} if meta["choices"] else {}
        p.add_argument(f"--{item.name.replace('_', '-')}", help=meta["help"], **shapes[meta["kind"]], **choices)
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue the run in OUT exactly")
    start.add_argument("--force", action="store_true", help="start afresh in OUT, replacing the run there")
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from .training import TrainConfig, Trainer, load_train_config

    # Flags left out (None) keep the file's value; lists arrive as lists.
    overrides = {item.name: getattr(args, item.name) for item in fields(TrainConfig)}
    overrides = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in overrides.items()}
    config = load_train_config(args.config, overrides)
    command = shlex.join(["dcae", *sys.argv[1:]])
    Trainer(config, resume=args.resume, replace=args.force, command=command).run()
    return EXIT_OK


# ----------------------------------------------------------------------------------- evaluation
def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="measure dcae and classic codecs on a folder of images")
    p.add_argument("dataset", help="folder of images (e.g. ../shared/datasets/kodak)")
    p.add_argument("--model", default="default", help="released model name or weights file; 'none' to skip dcae")
    p.add_argument("--qualities", type=_number, nargs="+", help="dcae rate points (default: every integer point)")
    p.add_argument("--codecs", default="jpeg,webp,avif", help="comma-separated: jpeg,jpeg444,webp,avif,jxl,heic")
    p.add_argument("--anchors", help="folder of published curves (CompressAI JSON) to compare against")
    p.add_argument("--bpp-range", type=_number, nargs=2, metavar=("LOW", "HIGH"), help="limit BD-rates to this range")
    p.add_argument("--max-images", type=_whole(1), help="use only the first N images")
    p.add_argument("--jobs", type=_whole(1), default=1, help="worker processes (timings then share the CPU)")
    p.add_argument("--threads", type=_whole(1), help="torch threads per job (default: the CPUs shared among jobs)")
    p.add_argument("--optimize", type=_whole(0), default=0, metavar="STEPS", help="as `compress --optimize`")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace an earlier report in the output folder")
    p.set_defaults(handler=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .evaluation.classic import CLASSIC_CODECS
    from .evaluation.report import REPORT_FILES, load_anchor_files, write_report
    from .evaluation.runner import evaluate
    from .files import find_images

    dataset = Path(args.dataset)
    codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    model = None if args.model == "none" else args.model
    if args.anchors and not Path(args.anchors).is_dir():
        raise UserError(f"anchor folder not found: {args.anchors}")
    unknown = [c for c in codecs if c not in CLASSIC_CODECS]
    if unknown:
        raise UserError(f"unknown codecs {', '.join(unknown)}; choose from {', '.join(CLASSIC_CODECS)}")
    find_images(dataset)  # a missing or empty folder is reported before any work starts
    out = Path(args.out)
    earlier = [out / name for name in REPORT_FILES if (out / name).exists()]
    if earlier and not args.force:
        raise UserError(f"{out} holds an earlier report ({earlier[0].name}); use --force to replace it")
    if not out.exists() and not out.parent.is_dir():
        raise UserError(f"cannot create folder {out}: its parent {out.parent} does not exist")
    bar = tqdm(total=0, desc="eval", unit="image-codec", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        results = evaluate(
            dataset,
            codecs,
            model,
            args.qualities,
            args.jobs,
            args.max_images,
            progress,
            optimize_steps=args.optimize,
            threads=args.threads,
        )
    finally:
        bar.close()
    written = write_report(
        out,
        results,
        load_anchor_files(args.anchors),
        dataset,
        model,
        tuple(args.bpp_range) if args.bpp_range else None,
        optimize_steps=args.optimize,
        force=args.force,
    )
    print(Path(written["table"]).read_text())
    print(f"wrote {', '.join(str(p) for p in written.values())}")
    return EXIT_OK


# ----------------------------------------------------------------------------------- conversion
def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert-reference", help="import a checkpoint of the reference DCAE release")
    p.add_argument("checkpoint", help="a .pth.tar / .pt file of the reference release")
    p.add_argument("-o", "--output", required=True, help="the .safetensors file to write")
    p.add_argument("--lambda", dest="lmbda", type=_positive_number, help="the lambda the checkpoint was trained for")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(handler=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    from .convert import convert_reference

    (output,) = plan_outputs([Path(args.checkpoint)], args.output, ".safetensors", args.force)
    meta = convert_reference(args.checkpoint, output, args.lmbda)
    print(f"wrote {output}: reference DCAE, model {meta['digest'][:16]}")
    return EXIT_OK


# --------------------------------------------------------------------------------------- export
def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model's transforms (ONNX)")
    p.add_argument("model", help="released model name or weights file")
    p.add_argument("--onnx", required=True, metavar="DIR", help="folder for analysis.onnx, synthesis.onnx, model.json")
    p.add_argument("--force", action="store_true", help="replace an earlier export in DIR")
    p.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    import json

    from .codecs import CodecCache
    from .export import export_onnx

    out = Path(args.onnx)
    existing = [out / name for name in ("analysis.onnx", "synthesis.onnx", "model.json") if (out / name).exists()]
    if existing and not args.force:
        raise UserError(f"{existing[0]} exists; use --force to replace the export")
    if not out.exists() and not out.parent.is_dir():
        raise UserError(f"cannot create folder {out}: its parent {out.parent} does not exist")
    try:
        import onnxscript  # noqa: F401 - the exporter needs it
    except ImportError:
        raise UserError("ONNX export needs the onnx extra: pip install 'dcae[onnx]'") from None
    codec = CodecCache().get(args.model)
    progress = _Progress(f"export {codec.name}", delay=0.0)  # every stage takes seconds
    try:
        description = export_onnx(codec.model, out, codec.name, codec.digest_hex, progress)
    finally:
        progress.close()
    check = description["largest_difference_from_pytorch"]
    measured = "not checked (onnxruntime is not installed)" if check is None else json.dumps(check)
    print(f"wrote {out}/analysis.onnx, synthesis.onnx, model.json; largest difference from PyTorch: {measured}")
    return EXIT_OK


# ----------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from . import __version__

    parser = _Parser(prog="dcae", description="Learned image compression (DCAE).")
    parser.add_argument("--version", action="version", version=f"dcae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_codec_commands(sub)
    _add_train(sub)
    _add_eval(sub)
    _add_convert(sub)
    _add_export(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
    """Warnings reach the user as one ``dcae: warning:`` line, without Python's source location."""
    print(f"dcae: warning: {message}", file=sys.stderr)


def _interrupt(_signum: int, _frame: Any) -> None:
    """SIGTERM ends a command as Ctrl-C does, so temporary files are removed on the way out."""
    raise KeyboardInterrupt


def main(argv: "Sequence[str] | None" = None) -> int:
    """Entry point of the ``dcae`` console script; returns the exit status."""
    return_large_blocks_to_the_system()  # (the OpenMP wait policy is set by importing dcae)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error already reported
        return int(stop.code or 0)
    previous = signal.signal(signal.SIGTERM, _interrupt) if _in_main_thread() else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.handler(args)
    except KeyboardInterrupt:
        print("dcae: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as error:
        print(f"dcae: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as error:  # noqa: BLE001 - last line of defence: a bug, one line unless debugging
        if os.environ.get("DCAE_DEBUG") == "1":
            import traceback

            traceback.print_exc()
        print(
            f"dcae: internal error: {type(error).__name__}: {error} (a bug in dcae; DCAE_DEBUG=1 shows where)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
