"""The ``dcae`` command line: compress, decompress, inspect, train, evaluate."""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from .errors import DcaeError

EXIT_OK, EXIT_USER_ERROR, EXIT_INTERNAL_ERROR = 0, 1, 2


class UserError(Exception):
    """A mistake the user can fix; reported as one line, exit status 1."""


# Mistakes a user can fix: one line, exit status 1. The tuple imports nothing but the errors
# module, so reporting a mistake can never fail on an import.
USER_ERRORS = (UserError, DcaeError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def _output_paths(inputs: list[Path], output: "str | None", suffix: str) -> list[Path]:
    """Where each input's result goes: next to it, into a folder, or (one input) a file."""
    if output is None:
        return [p.with_suffix(suffix) for p in inputs]
    out = Path(output)
    if len(inputs) > 1 or out.is_dir():
        if out.exists() and not out.is_dir():
            raise UserError(f"{out} is not a folder; with several inputs, -o must name a folder")
        out.mkdir(parents=True, exist_ok=True)
        return [out / (p.stem + suffix) for p in inputs]
    return [out]


def _write_atomically(path: Path, data: "bytes | None", force: bool, image=None) -> None:
    from .weights import atomic_write

    if path.exists() and not force:
        raise UserError(f"{path} exists; use --force to overwrite it")
    if image is not None:
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
        kind = fmt.get(path.suffix.lower(), "PNG")
        options = {"quality": 95} if kind in ("JPEG", "WEBP") else {}
        atomic_write(path, lambda tmp: image.save(tmp, format=kind, **options))
    else:
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def _for_each(inputs: list[Path], work, what: str) -> int:
    """Run ``work(path)`` for every input with a progress bar; report failures one line each."""
    from tqdm import tqdm

    failures = 0
    for path in tqdm(inputs, desc=what, unit="file", disable=len(inputs) < 2, file=sys.stderr):
        try:
            message = work(path)
            if message:
                tqdm.write(message)
        except USER_ERRORS as error:
            failures += 1
            tqdm.write(f"dcae: error: {path}: {error}", file=sys.stderr)
    return EXIT_USER_ERROR if failures else EXIT_OK


# ------------------------------------------------------------------------------- compress & co.
def _add_codec_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="compress images to .dcae files")
    p.add_argument("inputs", nargs="+", help="images (PNG, JPEG, WebP, TIFF, BMP)")
    p.add_argument("-o", "--output", help="output file (one input) or folder")
    p.add_argument("--model", default="default", help="zoo name or weights file (default: %(default)s)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--quality", type=float, help="rate point; higher is better quality and larger files")
    rate.add_argument("--target-bpp", type=float, help="largest bits per pixel of the file (quality by bisection)")
    rate.add_argument("--target-size", type=_parse_size, help="largest file size, e.g. 20000, 20k or 1.5M bytes")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    _add_machine_specific_flag(p)
    _add_optimize_flag(p)
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(handler=_run_compress)

    p = sub.add_parser("decompress", help="decode .dcae files to images")
    p.add_argument("inputs", nargs="+", help=".dcae files")
    p.add_argument("-o", "--output", help="output image (one input) or folder; format from the suffix (PNG default)")
    p.add_argument("--model", help="zoo name or weights file (default: the zoo model that wrote the file)")
    p.add_argument("--preview", type=int, metavar="K", help="decode only the first K latent slices (faster, coarser)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(handler=_run_decompress)

    p = sub.add_parser("info", help="describe a .dcae file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_run_info)

    p = sub.add_parser("models", help="list the models that ship with dcae")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_run_models)

    p = sub.add_parser("roundtrip", help="compress and decompress an image; print size, bpp, PSNR and timings")
    p.add_argument("image")
    p.add_argument("--model", default="default", help="zoo name or weights file (default: %(default)s)")
    p.add_argument("--quality", type=float, help="rate point (default: the middle of the model's range)")
    p.add_argument("--device", default="cpu")
    _add_machine_specific_flag(p)
    _add_optimize_flag(p)
    p.add_argument("--save", metavar="PNG", help="also write the decoded image here")
    p.add_argument("--force", action="store_true")
    p.set_defaults(handler=_run_roundtrip)


def _add_machine_specific_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--machine-specific",
        action="store_true",
        help="faster files that decode only on machines computing like this one (entropy model in float32)",
    )


def _add_optimize_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--optimize",
        type=int,
        default=0,
        metavar="STEPS",
        help="adapt each image's latents in STEPS gradient steps before coding: smaller files at equal "
        "quality, about STEPS times slower encoding (images up to 1536x1536; decoding unchanged)",
    )


def _parse_size(text: str) -> int:
    """Bytes from '20000', '20k' (x1000) or '1.5M' (x10^6)."""
    factors = {"k": 1_000, "m": 1_000_000}
    try:
        factor = factors.get(text[-1:].lower(), 1)
        value = float(text[:-1] if factor > 1 else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 20000, 20k or 1.5M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return int(value * factor)


def _codec_for(model: str, device: str, portable: bool = True, optimize_steps: int = 0):
    from .codec import load_codec

    if optimize_steps < 0:
        raise UserError(f"--optimize must be >= 0, got {optimize_steps}")
    return load_codec(model, device=device, portable=portable, optimize_steps=optimize_steps)


def _run_compress(args: argparse.Namespace) -> int:
    import time

    inputs = [Path(p) for p in args.inputs]
    outputs = dict(zip(inputs, _output_paths(inputs, args.output, ".dcae")))
    codec = _codec_for(args.model, args.device, not args.machine_specific, args.optimize)

    def work(path: Path) -> str:
        from . import bitstream
        from .imageio import load_image

        array, _ = load_image(path)
        start = time.perf_counter()
        data = codec.compress(path, quality=args.quality, target_bpp=args.target_bpp, target_size=args.target_size)
        seconds = time.perf_counter() - start
        _write_atomically(outputs[path], data, args.force)
        bpp = 8 * len(data) / (array.shape[0] * array.shape[1])
        quality = bitstream.unpack(data)[0].quality
        setting = f", quality {quality:.3f}" if quality is not None else ""
        return f"{path} -> {outputs[path]}: {len(data)} bytes, {bpp:.4f} bpp{setting}, {seconds:.2f} s"

    return _for_each(inputs, work, "compress")


def _codec_for_file(data: bytes, model: "str | None", device: str, cache: dict):
    """The codec that can decode ``data``: the one asked for, or the zoo model that wrote it."""
    from . import bitstream
    from .zoo import find_by_digest, missing_model_message

    if model is None:
        header, _ = bitstream.unpack(data)
        entry = find_by_digest(header.digest)
        if entry is None or not entry.available:
            raise UserError(missing_model_message(header.digest))
        model = entry.name
    if model not in cache:
        cache[model] = _codec_for(model, device)
    return cache[model]


def _run_decompress(args: argparse.Namespace) -> int:
    import time

    inputs = [Path(p) for p in args.inputs]
    outputs = dict(zip(inputs, _output_paths(inputs, args.output, ".png")))
    codecs: dict = {}
    if args.preview is not None and args.preview < 0:
        raise UserError("--preview must be >= 0")

    def work(path: Path) -> str:
        data = _read_file(path)
        codec = _codec_for_file(data, args.model, args.device, codecs)
        start = time.perf_counter()
        image = codec.decompress_image(data, preview_slices=args.preview)
        seconds = time.perf_counter() - start
        _write_atomically(outputs[path], None, args.force, image=image)
        return f"{path} -> {outputs[path]}: {image.width}x{image.height} {image.mode}, {seconds:.2f} s"

    return _for_each(inputs, work, "decompress")


def _read_file(path: Path) -> bytes:
    if not path.exists():
        raise UserError(f"file not found: {path}")
    if path.is_dir():
        raise UserError(f"expected a file, got a folder: {path}")
    return path.read_bytes()


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
        "bpp": 8 * len(data) / header.num_pixels,
        "colour_mode": header.colour_mode.name,
        "padding": header.pad_mode.name.lower(),
        "quality": header.quality,
        "architecture": header.architecture,
        "model_digest": header.digest.hex(),
        "model": entry.name if entry else None,
        "scale_table_size": header.scale_table_size,
        "slices": header.num_slices,
        "format_version": 1 if header.latent_checksum is None else bitstream.FORMAT_VERSION,
        "portable": header.portable,
        "latent_checksum": None if header.latent_checksum is None else f"{header.latent_checksum:08x}",
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
        aliases = [alias for alias, target in ALIASES.items() if target == entry.name]
        row = {
            "name": entry.name,
            "aliases": aliases,
            "digest": entry.digest,
            "released": entry.released,
            "training_steps": entry.training_steps,
            "installed": entry.available,
            "description": entry.description,
        }
        if entry.available:
            row.update(
                rate_points=read_metadata(entry.path).get("config", {}).get("num_rate_points"), path=str(entry.path)
            )
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
    import math
    import time

    import numpy as np
    import torch
    from pytorch_msssim import ms_ssim

    from .imageio import load_image, to_pil

    codec = _codec_for(args.model, args.device, not args.machine_specific, args.optimize)
    array, mode = load_image(Path(args.image))
    start = time.perf_counter()
    data = codec.compress(array, quality=args.quality)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = codec.decompress(data)
    decode_s = time.perf_counter() - start
    height, width = array.shape[:2]
    mse = float(np.mean((decoded.astype(np.float64) - array.astype(np.float64)) ** 2))
    psnr = 10 * math.log10(255**2 / mse) if mse > 0 else float("inf")
    line = (
        f"{args.image}: {width}x{height}, model {codec.name}, quality {codec._quality(args.quality)}: "
        f"{len(data)} bytes, {8 * len(data) / (width * height):.4f} bpp, PSNR {psnr:.2f} dB"
    )
    if min(height, width) > 160:
        to_t = lambda a: torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float()  # noqa: E731
        line += f", MS-SSIM {float(ms_ssim(to_t(decoded), to_t(array), data_range=255)):.4f}"
    print(line + f"; encode {encode_s:.2f} s, decode {decode_s:.2f} s")
    if args.save:
        _write_atomically(Path(args.save), None, args.force, image=to_pil(decoded, mode))
    return EXIT_OK


# ------------------------------------------------------------------------------------------ train
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (one CPU, one GPU, or many GPUs under torchrun)")
    p.add_argument("config", nargs="?", help="TOML training config (see configs/)")
    p.add_argument("--model", help="model preset name")
    p.add_argument("--init-from", help="start from these weights (fresh optimiser state)")
    p.add_argument("--lambdas", type=float, nargs="+", help="rate-distortion trade-off(s)")
    p.add_argument("--distortion", choices=["mse", "ms-ssim"])
    p.add_argument("--lambda-sampling", choices=["batch", "image"])
    p.add_argument("--lambda-weights", type=float, nargs="+", help="relative probability of each lambda")
    p.add_argument("--rate-proxy", choices=["noise", "ste"])
    p.add_argument("--train-data", help="folder of training images")
    p.add_argument("--val-data", help="folder of validation images ('' validates on the held-back photos)")
    p.add_argument("--holdout", type=int, help="training photos held back for validation")
    p.add_argument("--val-every", type=int)
    p.add_argument("--val-images", type=int)
    p.add_argument("--patch", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--downscale", type=float, nargs=2, metavar=("LOW", "HIGH"))
    p.add_argument("--workers", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--lr-milestones", type=int, nargs="*")
    p.add_argument("--lr-gamma", type=float, help="learning-rate factor at each milestone")
    p.add_argument("--clip", type=float)
    p.add_argument("--aux-lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="output folder for checkpoints and logs")
    p.add_argument("--checkpoint-minutes", type=float)
    p.add_argument("--time-limit-minutes", type=float, help="stop with a checkpoint after this long")
    p.add_argument("--cpu-budget-minutes", type=float, help="stop when the run has used this much CPU time")
    p.add_argument("--ema-decay", type=float, help="keep a moving average of the weights (e.g. 0.999)")
    p.add_argument("--log-every", type=int)
    p.add_argument("--device")
    p.add_argument("--amp", choices=["auto", "bf16", "off"])
    p.add_argument("--compile", action="store_true", default=None)
    p.add_argument("--channels-last", action="store_true", default=None)
    p.add_argument("--threads", type=int)
    p.add_argument("--resume", action="store_true", help="continue from OUT/latest.* exactly")
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from .training import TrainConfig, Trainer, load_train_config

    # Every TrainConfig field that has a flag; flags left out (None) keep the file's value.
    keys = [f.name for f in fields(TrainConfig) if hasattr(args, f.name)]
    overrides = {k: getattr(args, k) for k in keys}
    for key in ("lambdas", "lambda_weights", "downscale", "lr_milestones"):
        if overrides[key] is not None:
            overrides[key] = list(overrides[key])
    config = load_train_config(args.config, overrides)
    Trainer(config, resume=args.resume, command=shlex.join(["dcae", *sys.argv[1:]])).run()
    return EXIT_OK


# -------------------------------------------------------------------------------- evaluation
def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="measure dcae and classic codecs on a folder of images")
    p.add_argument("dataset", help="folder of images (e.g. ../shared/datasets/kodak)")
    p.add_argument("--model", default="default", help="zoo name or weights file; 'none' to skip dcae")
    p.add_argument("--qualities", type=float, nargs="+", help="dcae rate points (default: every integer point)")
    p.add_argument("--codecs", default="jpeg,webp,avif", help="comma-separated: jpeg,jpeg444,webp,avif,jxl,heic")
    p.add_argument("--anchors", help="folder of published curves (CompressAI JSON) to compare against")
    p.add_argument("--bpp-range", type=float, nargs=2, metavar=("LOW", "HIGH"), help="limit BD-rates to this range")
    p.add_argument("--max-images", type=int, help="use only the first N images")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (timings then share the CPU)")
    p.add_argument("--threads", type=int, help="torch threads per worker (default: the CPUs shared among the jobs)")
    p.add_argument("--optimize", type=int, default=0, metavar="STEPS", help="dcae latent optimisation (as compress)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(handler=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .evaluation.classic import CLASSIC_CODECS
    from .evaluation.report import load_anchor_files, write_report
    from .evaluation.runner import evaluate
    from .training.data import find_images

    dataset = Path(args.dataset)
    codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    model = None if args.model == "none" else args.model
    if args.anchors and not Path(args.anchors).is_dir():
        raise UserError(f"anchor folder not found: {args.anchors}")
    if args.jobs < 1:
        raise UserError("--jobs must be >= 1")
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads must be >= 1")
    if args.optimize < 0:
        raise UserError(f"--optimize must be >= 0, got {args.optimize}")
    unknown = [c for c in codecs if c not in CLASSIC_CODECS]
    if unknown:
        raise UserError(f"unknown codecs {', '.join(unknown)}; choose from {', '.join(CLASSIC_CODECS)}")
    find_images(dataset)  # a missing or empty folder is reported before any work starts
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
    except ValueError as error:
        raise UserError(str(error)) from None
    finally:
        bar.close()
    written = write_report(
        Path(args.out),
        results,
        load_anchor_files(args.anchors),
        dataset,
        model,
        tuple(args.bpp_range) if args.bpp_range else None,
        optimize_steps=args.optimize,
    )
    print(Path(written["table"]).read_text())
    print(f"wrote {', '.join(str(p) for p in written.values())}")
    return EXIT_OK


# -------------------------------------------------------------------------------- conversion
def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert-reference", help="import a checkpoint of the reference DCAE release")
    p.add_argument("checkpoint", help="a .pth.tar / .pt file of the reference release")
    p.add_argument("-o", "--output", required=True, help="the .safetensors file to write")
    p.add_argument("--lambda", dest="lmbda", type=float, help="the lambda the checkpoint was trained for")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(handler=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    from .convert import convert_reference

    output = Path(args.output)
    if output.exists() and not args.force:
        raise UserError(f"{output} exists; use --force to overwrite it")
    meta = convert_reference(args.checkpoint, output, args.lmbda)
    print(f"wrote {output}: reference DCAE, model {meta['digest'][:16]}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from . import __version__

    parser = argparse.ArgumentParser(prog="dcae", description="Learned image compression (DCAE).")
    parser.add_argument("--version", action="version", version=f"dcae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_codec_commands(sub)
    _add_train(sub)
    _add_eval(sub)
    _add_convert(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
    """Warnings reach the user as one ``dcae: warning:`` line, without Python's source location."""
    print(f"dcae: warning: {message}", file=sys.stderr)


def main(argv: "Sequence[str] | None" = None) -> int:
    """Entry point of the ``dcae`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.handler(args)
    except KeyboardInterrupt:
        print("dcae: interrupted", file=sys.stderr)
        return EXIT_USER_ERROR
    except USER_ERRORS as error:
        print(f"dcae: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as error:  # noqa: BLE001 - last line of defence: one line, not a traceback
        print(f"dcae: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
