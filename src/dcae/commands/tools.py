"""The research commands: train, eval, convert-reference and export."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..codecs import CodecCache
from ..errors import EXIT_OK, UsageError
from ..files import find_images
from ..outputs import plan_outputs
from ..training.config import TrainConfig
from .arguments import integer, number, positive_number, whole
from .terminal import ProgressBar, counter


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The train, eval, convert-reference and export commands."""
    _add_train(sub)
    _add_eval(sub)
    _add_convert(sub)
    _add_export(sub)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (one CPU, one GPU, or many GPUs under torchrun)")
    p.add_argument("config", nargs="?", help="TOML training config (see configs/); flags override its values")
    # One flag per config field, from its declaration; checked with the config (TrainConfig.validate).
    shapes: dict[str, dict[str, Any]] = {
        "int": {"type": integer},
        "float": {"type": number},
        "str": {},
        "model": {},
        "bool": {"action": "store_true", "default": None},
        "floats": {"type": number, "nargs": "+"},
        "ints": {"type": integer, "nargs": "*"},
        "pair": {"type": number, "nargs": 2, "metavar": ("LOW", "HIGH")},
    }
    for item in fields(TrainConfig):
        meta = item.metadata
        choices = {"choices": meta["choices"]} if meta["choices"] else {}
        p.add_argument(f"--{item.name.replace('_', '-')}", help=meta["help"], **shapes[meta["kind"]], **choices)
    start = p.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUT from its checkpoint (weights, optimiser, step, origin; init_from is not read)",
    )
    start.add_argument("--force", action="store_true", help="start afresh in OUT, replacing the run there")
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from ..training import Trainer, load_train_config

    # Flags left out (None) keep the file's value; lists arrive as lists.
    overrides = {item.name: getattr(args, item.name) for item in fields(TrainConfig)}
    overrides = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in overrides.items()}
    config = load_train_config(args.config, overrides)
    command = shlex.join(["dcae", *sys.argv[1:]])
    Trainer(config, resume=args.resume, replace=args.force, command=command).run()
    return EXIT_OK


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="measure dcae and classic codecs on a folder of images")
    p.add_argument("dataset", help="folder of images (e.g. ../shared/datasets/kodak)")
    p.add_argument("--model", default="default", help="released model name or weights file; 'none' to skip dcae")
    p.add_argument("--qualities", type=number, nargs="+", help="dcae rate points (default: every integer point)")
    p.add_argument("--codecs", default="jpeg,webp,avif", help="comma-separated: jpeg,jpeg444,webp,avif,jxl,heic")
    p.add_argument("--anchors", help="folder of published curves (CompressAI JSON) to compare against")
    p.add_argument("--bpp-range", type=number, nargs=2, metavar=("LOW", "HIGH"), help="limit BD-rates to this range")
    p.add_argument("--max-images", type=whole(1), help="use only the first N images")
    p.add_argument("--jobs", type=whole(1), default=1, help="worker processes (timings then share the CPU)")
    p.add_argument("--threads", type=whole(1), help="torch threads per job (default: the CPUs shared among jobs)")
    p.add_argument("--optimize", type=whole(0), default=0, metavar="STEPS", help="as `compress --optimize`")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace an earlier report in the output folder")
    p.set_defaults(handler=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from ..evaluation.classic import CLASSIC_CODECS
    from ..evaluation.report import REPORT_FILES, load_anchor_files, write_report
    from ..evaluation.runner import evaluate

    dataset = Path(args.dataset)
    codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    model = None if args.model == "none" else args.model
    if args.anchors and not Path(args.anchors).is_dir():
        raise UsageError(f"anchor folder not found: {args.anchors}")
    unknown = [c for c in codecs if c not in CLASSIC_CODECS]
    if unknown:
        raise UsageError(f"unknown codecs {', '.join(unknown)}; choose from {', '.join(CLASSIC_CODECS)}")
    find_images(dataset)  # a missing or empty folder is reported before any work starts
    out = Path(args.out)
    earlier = [out / name for name in REPORT_FILES if (out / name).exists()]
    if earlier and not args.force:
        raise UsageError(f"{out} holds an earlier report ({earlier[0].name}); use --force to replace it")
    if not out.exists() and not out.parent.is_dir():
        raise UsageError(f"cannot create folder {out}: its parent {out.parent} does not exist")
    results = evaluate(
        dataset,
        codecs,
        model,
        args.qualities,
        args.jobs,
        args.max_images,
        counter("eval", "image-codec"),
        optimize_steps=args.optimize,
        threads=args.threads,
    )
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


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert-reference", help="import a checkpoint of the reference DCAE release")
    p.add_argument("checkpoint", help="a .pth.tar / .pt file of the reference release")
    p.add_argument("-o", "--output", required=True, help="the .safetensors file to write")
    p.add_argument("--lambda", dest="lmbda", type=positive_number, help="the lambda the checkpoint was trained for")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(handler=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    from ..convert import convert_reference

    (output,) = plan_outputs([Path(args.checkpoint)], args.output, ".safetensors", args.force)
    meta = convert_reference(args.checkpoint, output, args.lmbda)
    print(f"wrote {output}: reference DCAE, model {meta['digest'][:16]}")
    return EXIT_OK


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model's transforms (ONNX)")
    p.add_argument("model", help="released model name or weights file")
    p.add_argument("--onnx", required=True, metavar="DIR", help="folder for analysis.onnx, synthesis.onnx, model.json")
    p.add_argument("--force", action="store_true", help="replace an earlier export in DIR")
    p.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from ..export import export_onnx

    out = Path(args.onnx)
    existing = [out / name for name in ("analysis.onnx", "synthesis.onnx", "model.json") if (out / name).exists()]
    if existing and not args.force:
        raise UsageError(f"{existing[0]} exists; use --force to replace the export")
    if not out.exists() and not out.parent.is_dir():
        raise UsageError(f"cannot create folder {out}: its parent {out.parent} does not exist")
    try:
        import onnxscript  # noqa: F401 - the exporter needs it
    except ImportError:
        raise UsageError("ONNX export needs the onnx extra: pip install 'dcae[onnx]'") from None
    codec = CodecCache().get(args.model)
    progress = ProgressBar(f"export {codec.name}", delay=0.0)  # every stage takes seconds
    try:
        description = export_onnx(codec.model, out, codec.name, codec.digest_hex, progress)
    finally:
        progress.close()
    check = description["largest_difference_from_pytorch"]
    measured = "not checked (onnxruntime is not installed)" if check is None else json.dumps(check)
    print(f"wrote {out}/analysis.onnx, synthesis.onnx, model.json; largest difference from PyTorch: {measured}")
    return EXIT_OK
