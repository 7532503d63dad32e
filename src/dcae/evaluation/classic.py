"""Classic image codecs behind one small interface, with quality sweeps for RD curves."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class ClassicCodec:
    """A named codec: ``encode(rgb uint8, quality) -> bytes`` and ``decode(bytes) -> rgb uint8``."""

    name: str
    description: str
    qualities: tuple[float, ...]
    encode: Callable[[np.ndarray, float], bytes]
    decode: Callable[[bytes], np.ndarray]


def _pil_encode(fmt: str, **options) -> Callable[[np.ndarray, float], bytes]:
    def encode(rgb: np.ndarray, quality: float) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(buffer, format=fmt, quality=int(quality), **options)
        return buffer.getvalue()

    return encode


def _pil_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _jxl_encode(rgb: np.ndarray, quality: float) -> bytes:
    import imagecodecs

    return imagecodecs.jpegxl_encode(rgb, level=int(quality), effort=7)


def _jxl_decode(data: bytes) -> np.ndarray:
    import imagecodecs

    return np.asarray(imagecodecs.jpegxl_decode(data))[..., :3]


def _heic_encode(rgb: np.ndarray, quality: float) -> bytes:
    import pillow_heif

    heif = pillow_heif.from_bytes(mode="RGB", size=(rgb.shape[1], rgb.shape[0]), data=rgb.tobytes())
    buffer = io.BytesIO()
    heif.save(buffer, quality=int(quality), chroma=444)
    return buffer.getvalue()


def _heic_decode(data: bytes) -> np.ndarray:
    import pillow_heif

    heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
    return np.asarray(heif.to_pillow().convert("RGB"))


CLASSIC_CODECS: dict[str, ClassicCodec] = {
    "jpeg": ClassicCodec(
        "jpeg-420",
        "Pillow JPEG (libjpeg-turbo), 4:2:0",
        (2, 5, 10, 20, 30, 50, 70, 85, 95),
        _pil_encode("JPEG", subsampling=2),
        _pil_decode,
    ),
    "jpeg444": ClassicCodec(
        "jpeg-444",
        "Pillow JPEG (libjpeg-turbo), 4:4:4",
        (2, 5, 10, 20, 30, 50, 70, 85, 95),
        _pil_encode("JPEG", subsampling=0),
        _pil_decode,
    ),
    "webp": ClassicCodec(
        "webp",
        "Pillow WebP (libwebp), method 6",
        (0, 5, 15, 25, 40, 55, 70, 80, 90),
        _pil_encode("WEBP", method=6),
        _pil_decode,
    ),
    "avif": ClassicCodec(
        "avif-444",
        "Pillow AVIF (libavif/aom), speed 4, 4:4:4",
        (2, 10, 20, 30, 40, 50, 60, 70, 80),
        _pil_encode("AVIF", speed=4, subsampling="4:4:4"),
        _pil_decode,
    ),
    "jxl": ClassicCodec(
        "jxl",
        "imagecodecs JPEG XL (libjxl), effort 7",
        (10, 30, 45, 60, 70, 80, 90),
        _jxl_encode,
        _jxl_decode,
    ),
    "heic": ClassicCodec(
        "heic-444",
        "pillow-heif HEIC (x265), 4:4:4",
        (5, 15, 25, 40, 55, 70, 85),
        _heic_encode,
        _heic_decode,
    ),
}
