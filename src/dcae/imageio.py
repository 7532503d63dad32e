"""Reading images into 8-bit RGB arrays and writing decoded arrays back, in the source's mode."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .bitstream import ColourMode
from .errors import ImageError

ImageLike = "str | os.PathLike[str] | Image.Image | np.ndarray"


def _from_16bit(array: np.ndarray, what: str) -> np.ndarray:
    warnings.warn(f"{what} has more than 8 bits per sample; reducing to 8 bits", stacklevel=3)
    return np.clip(np.round(array.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)


def _from_array(array: np.ndarray) -> tuple[np.ndarray, ColourMode]:
    if array.ndim == 2:
        array, mode = np.stack([array] * 3, axis=-1), ColourMode.L
    elif array.ndim == 3 and array.shape[2] in (3, 4):
        mode = ColourMode.RGB
        if array.shape[2] == 4:
            alpha = array[..., 3]
            opaque = 255 if array.dtype == np.uint8 else 65535 if array.dtype == np.uint16 else 1.0
            if not np.all(alpha == opaque):
                raise ImageError("images with transparency are not supported: flatten the alpha channel first")
            array, mode = array[..., :3], ColourMode.RGBA_OPAQUE
    else:
        raise ImageError(f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageError(f"empty image of shape {array.shape}")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array), mode
    if array.dtype == np.uint16:
        return _from_16bit(array, "the image"), mode
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ImageError("float images must hold finite values in [0, 1]")
        return np.round(array * 255).astype(np.uint8), mode
    raise ImageError(f"unsupported array dtype {array.dtype}; use uint8, uint16 or floats in [0, 1]")


def _from_pil(image: Image.Image, what: str = "the image") -> tuple[np.ndarray, ColourMode]:
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.int64)
        if array.max(initial=0) > 65535 or array.min(initial=0) < 0:
            raise ImageError(f"unsupported {mode} image with values outside 0..65535")
        gray = _from_16bit(array, what)
        return np.stack([gray] * 3, axis=-1), ColourMode.L
    if mode == "F":
        raise ImageError("32-bit float images are not supported; convert to 8 or 16 bits first")
    if mode == "P":
        has_alpha = "transparency" in image.info
        converted = image.convert("RGBA" if has_alpha else "RGB")
        array, _ = _from_array(np.asarray(converted))
        return array, ColourMode.P
    if mode in ("L", "1"):
        return np.stack([np.asarray(image.convert("L"))] * 3, axis=-1), ColourMode.L
    if mode == "LA":
        la = np.asarray(image)
        if not np.all(la[..., 1] == 255):
            raise ImageError("images with transparency are not supported: flatten the alpha channel first")
        return np.stack([la[..., 0]] * 3, axis=-1), ColourMode.LA_OPAQUE
    if mode == "RGBA":
        return _from_array(np.asarray(image))
    if mode != "RGB":
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, ...
    return np.ascontiguousarray(np.asarray(image)), ColourMode.RGB


def load_image(source: ImageLike) -> tuple[np.ndarray, ColourMode]:
    """An (H, W, 3) uint8 RGB array and the source's colour mode.

    Accepts a path, a PIL image or a numpy array. EXIF orientation is applied; grayscale and
    palette images become RGB (and are restored on decoding); 16-bit samples are reduced to 8
    bits with a warning; an alpha channel is accepted only when fully opaque.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, Image.Image):
        return _from_pil(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageError(f"image not found: {path}")
        if path.is_dir():
            raise ImageError(f"expected an image file, got a folder: {path}")
        try:
            with Image.open(path) as image:
                image.load()
                return _from_pil(image, what=str(path))
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
            raise ImageError(f"cannot read image {path}: {error}") from None
    raise ImageError(f"expected a path, PIL image or numpy array, got {type(source).__name__}")


def to_pil(array: np.ndarray, mode: ColourMode) -> Image.Image:
    """A PIL image in the recorded colour mode from a decoded (H, W, 3) uint8 array."""
    rgb = Image.fromarray(array, "RGB")
    if mode in (ColourMode.L, ColourMode.LA_OPAQUE):
        gray = rgb.convert("L")
        return gray.convert("LA") if mode == ColourMode.LA_OPAQUE else gray
    if mode == ColourMode.P:
        return rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    if mode == ColourMode.RGBA_OPAQUE:
        return rgb.convert("RGBA")
    return rgb
