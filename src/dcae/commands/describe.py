"""The commands that describe without coding: info (a file) and models (the releases)."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageCms

from .. import bitstream
from ..errors import EXIT_OK
from ..weights import read_metadata
from ..zoo import ALIASES, RELEASES, find_by_digest
from .batch import read_file


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The info and models commands."""
    p = sub.add_parser("info", help="describe a .dcae file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run_info)

    p = sub.add_parser("models", help="list the released models")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run_models)


def run_info(args: argparse.Namespace) -> int:
    data = read_file(Path(args.file))
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
        **_side_parts(header),
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return EXIT_OK


def run_models(args: argparse.Namespace) -> int:
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


def _side_parts(header: bitstream.Header) -> dict[str, Any]:
    """What the file carries beside the colour: the ICC profile (its description), EXIF (camera
    and date), XMP and the alpha plane, with their sizes."""
    parts = header.side_parts or bitstream.SideParts()
    icc = None
    if parts.icc_profile:
        try:
            description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(parts.icc_profile)))
        except (OSError, ImageCms.PyCMSError):
            description = "unreadable"
        icc = {"description": description.strip(), "bytes": len(parts.icc_profile)}
    exif = None
    if parts.exif:
        tags = Image.Exif()
        tags.load(parts.exif)
        details = tags.get_ifd(ExifTags.IFD.Exif)
        exif = {
            "bytes": len(parts.exif),
            "camera": " ".join(str(tags[t]).strip() for t in (ExifTags.Base.Make, ExifTags.Base.Model) if t in tags)
            or None,
            "taken": details.get(ExifTags.Base.DateTimeOriginal) or tags.get(ExifTags.Base.DateTime),
            "location": bool(tags.get_ifd(ExifTags.IFD.GPSInfo)),
        }
    alpha = None if parts.alpha_image is None else {"bytes": len(parts.alpha_image)}
    return {
        "icc_profile": icc,
        "exif": exif,
        "xmp": None if parts.xmp is None else {"bytes": len(parts.xmp)},
        "alpha": alpha,
    }
