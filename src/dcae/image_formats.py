"""Writing an image in the format its file name asks for, with its ICC profile, EXIF and XMP
as that format carries them (without PyTorch: the command line imports it at start-up)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, PngImagePlugin


def xmp_png_chunk(xmp: bytes) -> PngImagePlugin.PngInfo:
    """PNG's way to carry an XMP packet: an iTXt chunk named ``XML:com.adobe.xmp``."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
    return info


def image_format_options(path: Path, image: Any) -> tuple[str, Any, dict[str, Any]]:
    """The format an output's suffix names (PNG by default), the image as that format can hold
    it, and the options that carry its ICC profile, EXIF and XMP; what a format cannot hold is
    left out with a warning."""
    formats = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
    kind = formats.get(path.suffix.lower(), "PNG")
    icc, exif, xmp = (image.info.get(key) for key in ("icc_profile", "exif", "xmp"))
    image.encoderinfo = {}  # the options below say what is written, per format
    options: dict[str, Any] = {"quality": 95} if kind in ("JPEG", "WEBP") else {}
    if kind == "JPEG" and image.mode in ("RGBA", "LA"):
        warnings.warn(f"{path}: JPEG holds no transparency; the alpha plane is left out", stacklevel=2)
        image = image.convert("RGB" if image.mode == "RGBA" else "L")
    if kind == "BMP":
        if icc or exif or xmp:
            warnings.warn(f"{path}: BMP holds no colour profile or metadata; they are left out", stacklevel=2)
        return kind, image, options
    if icc:
        options["icc_profile"] = icc
    if kind == "TIFF":  # EXIF and XMP are both tags of the TIFF's directory
        tags = Image.Exif()
        if exif:
            tags.load(exif)
        if xmp:
            tags[ExifTags.Base.XMLPacket] = xmp
        if exif or xmp:
            options["exif"] = tags
        return kind, image, options
    if exif:
        options["exif"] = exif
    if xmp and kind == "PNG":
        options["pnginfo"] = xmp_png_chunk(xmp)
    elif xmp:
        options["xmp"] = xmp
    return kind, image, options
