"""The coding commands: compress, decompress and roundtrip."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from PIL import Image

from .. import bitstream
from ..codecs import CodecCache
from ..errors import EXIT_OK, UsageError
from ..memory import return_large_blocks_to_the_system
from ..outputs import decoded_name, plan_outputs
from ..runtime import thread_count, torch_threads
from .arguments import (
    add_effort_flags,
    add_model_flag,
    add_runtime_flags,
    number,
    optimize_steps,
    positive_number,
    size,
    torch_device,
    whole,
)
from .batch import for_each, read_file, write_result
from .terminal import ProgressBar


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The compress, decompress and roundtrip commands."""
    p = sub.add_parser("compress", help="compress images to .dcae files")
    p.add_argument("inputs", nargs="+", help="images (PNG, JPEG, WebP, TIFF, BMP)")
    p.add_argument("-o", "--output", help="output file (one input) or folder (several inputs, or ending in /)")
    add_model_flag(p)
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--quality", type=number, help="rate point; higher is better quality and larger files")
    rate.add_argument("--target-bpp", type=positive_number, help="largest bits per pixel of the file")
    rate.add_argument("--target-size", type=size, help="largest file size, e.g. 20000, 20k or 1.5M bytes")
    p.add_argument("--roi", metavar="MASK", help="region of interest: an image of the same size, non-zero inside")
    p.add_argument("--roi-quality", type=number, metavar="Q", help="quality inside --roi (outside: --quality)")
    add_runtime_flags(p, jobs=True)
    p.add_argument(
        "--machine-specific",
        action="store_true",
        help="faster files that decode only on machines computing like this one (entropy model in float32)",
    )
    p.add_argument(
        "--strip",
        action="store_true",
        help="leave out EXIF and XMP (camera, date, and often where the photo was taken); the colour profile stays",
    )
    add_effort_flags(p)
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(handler=_run_compress)

    p = sub.add_parser("decompress", help="decode .dcae files to images")
    p.add_argument("inputs", nargs="+", help=".dcae files")
    p.add_argument("-o", "--output", help="output image (one input) or folder; format from the suffix (PNG default)")
    add_model_flag(p, default=None)
    p.add_argument("--preview", type=whole(0), metavar="K", help="decode only the first K latent slices")
    p.add_argument("--onnx", metavar="DIR", help="run the synthesis in onnxruntime from `dcae export --onnx DIR`")
    add_runtime_flags(p, jobs=True)
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(handler=_run_decompress)

    p = sub.add_parser("roundtrip", help="compress and decompress an image; print size, bpp, PSNR and timings")
    p.add_argument("image")
    add_model_flag(p)
    p.add_argument("--quality", type=number, help="rate point (default: the middle of the model's range)")
    add_runtime_flags(p)
    p.add_argument("--machine-specific", action="store_true", help="code as `compress --machine-specific` does")
    add_effort_flags(p)
    p.add_argument("--save", metavar="PNG", help="also write the decoded image here")
    p.add_argument("--force", action="store_true", help="overwrite the --save file")
    p.set_defaults(handler=_run_roundtrip)


def _codecs(args: argparse.Namespace, state: dict) -> Any:
    """The command's codec cache (one per process: the command's, or a worker's)."""
    if "codecs" not in state:
        state["codecs"] = CodecCache(device=torch_device(args.device))
    return state["codecs"]


def _options(args: argparse.Namespace, **options: Any) -> dict[str, Any]:
    """Codec options from the runtime flags, plus ``options``."""
    if args.max_pixels is not None:
        options["max_pixels"] = args.max_pixels or None
    return options


def _run_compress(args: argparse.Namespace) -> int:
    inputs = [Path(p) for p in args.inputs]
    outputs = plan_outputs(inputs, args.output, ".dcae", args.force)
    torch_device(args.device)  # a wrong device is one error, not one per file
    return for_each(_compress_file, list(zip(inputs, outputs)), args, "compress")


def _compress_file(path: Path, output: Path, state: dict, args: argparse.Namespace) -> str:
    return_large_blocks_to_the_system(_pixels_of_image(path))
    options = _options(args, portable=not args.machine_specific, optimize_steps=optimize_steps(args))
    codec = _codecs(args, state).get(args.model, keep_metadata=not args.strip, **options)
    rate = {"quality": args.quality, "target_bpp": args.target_bpp, "target_size": args.target_size}
    if args.roi is not None:
        rate = {"quality_map": _roi_map(path, args, codec)}
    progress = ProgressBar(str(path))
    try:
        result = codec.compress(path, progress=progress, **rate)
    finally:
        progress.close()
    write_result(output, result.data, args.force)
    quality = f", quality {result.header.quality:.3f}" if result.header.quality is not None else ""
    return f"{path} -> {output}: {len(result.data)} bytes, {result.bpp:.4f} bpp{quality}, {result.seconds:.2f} s"


def _roi_map(path: Path, args: argparse.Namespace, codec: Any) -> Any:
    """The quality map of ``--roi MASK --roi-quality Q`` (outside the mask: ``--quality``)."""
    import numpy as np
    from PIL import Image

    from ..imageio import load_image
    from ..quality_map import roi_quality_map

    if args.roi_quality is None or args.target_bpp is not None or args.target_size is not None:
        raise UsageError("--roi needs --roi-quality (and --quality for outside it, not a rate target)")
    image, _ = load_image(path, codec.options.max_pixels)
    mask, _ = load_image(Path(args.roi), codec.options.max_pixels)
    if mask.shape != image.shape:
        raise UsageError(
            f"the --roi mask is {mask.shape[1]}x{mask.shape[0]}, the image {image.shape[1]}x{image.shape[0]}"
        )
    inside = np.asarray(Image.fromarray(mask).convert("L")) > 127
    outside = codec.check_quality(args.quality)
    return roi_quality_map(inside, outside, args.roi_quality)


def _run_decompress(args: argparse.Namespace) -> int:
    inputs = [Path(p) for p in args.inputs]
    if len(inputs) == 1:  # a foreign or damaged file is reported before PyTorch loads
        bitstream.unpack(read_file(inputs[0]))
    outputs = plan_outputs(
        inputs, args.output, ".png", args.force, lambda path: decoded_name(path, preview_slices=args.preview)
    )
    torch_device(args.device)
    return for_each(_decompress_file, list(zip(inputs, outputs)), args, "decompress")


def _decompress_file(path: Path, output: Path, state: dict, args: argparse.Namespace) -> str:
    data = read_file(path)
    header, _ = bitstream.unpack(data)
    return_large_blocks_to_the_system(header.num_pixels)
    codec = _codecs(args, state).for_file(data, args.model, **_options(args, onnx_synthesis=args.onnx))
    progress = ProgressBar(str(path))
    try:
        decoded = codec.decompress(data, preview_slices=args.preview, progress=progress)
        image = decoded.to_pil()
        expected = decoded.pixels.nbytes // 2  # about a photo's PNG: enough to keep the bar moving
        write_result(output, None, args.force, image, lambda written: progress.writing(written, expected))
    finally:
        progress.close()
    return f"{path} -> {output}: {image.width}x{image.height} {image.mode}, {decoded.seconds:.2f} s"


def _run_roundtrip(args: argparse.Namespace) -> int:
    save = Path(args.save) if args.save else None
    if save is not None:
        plan_outputs([Path(args.image)], args.save, save.suffix or ".png", args.force)
    with torch_threads(thread_count(args.threads)):
        return _roundtrip(args, save)


def _roundtrip(args: argparse.Namespace, save: "Path | None") -> int:
    from ..imageio import load_image
    from ..metrics import msssim, psnr

    options = _options(args, portable=not args.machine_specific, optimize_steps=optimize_steps(args))
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
        from ..imageio import to_pil

        write_result(save, None, args.force, to_pil(decoded.pixels, header.colour_mode))
    return EXIT_OK


def _pixels_of_image(path: Path) -> int:
    """The pixels an image file declares in its header (0 when it cannot be read: the codec
    then reports why)."""
    try:
        with warnings.catch_warnings(), Image.open(path) as image:
            warnings.simplefilter("ignore")
            return image.size[0] * image.size[1]
    except Image.DecompressionBombError:  # above twice Pillow's limit: large by any measure
        return 2 * (Image.MAX_IMAGE_PIXELS or 0)
    except (OSError, ValueError):
        return 0
