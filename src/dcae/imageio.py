"""Images in and out: files, PIL images and arrays to 8-bit RGB, tensors for the network, and
decoded pixels back in the source's colour mode."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError, features

from .bitstream import ColourMode, PadMode
from .errors import DcaeError, FormatError, ImageError
from .files import check_readable

ImageLike = "str | os.PathLike[str] | Image.Image | np.ndarray"

# Pillow's default limit against decompression bombs (``PIL.Image.MAX_IMAGE_PIXELS``), which
# dcae follows for encoding and decoding alike; None lifts it.
DEFAULT_MAX_PIXELS = 89_478_485


def check_pixels(width: int, height: int, max_pixels: "int | None", what: str) -> None:
    """Raise :class:`ImageError` when ``what`` (width x height) is above ``max_pixels``."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"{what} is {width}x{height} ({width * height / 1e6:.1f} million pixels), above the limit of "
            f"{max_pixels:,} pixels; raise it with --max-pixels (API: max_pixels=) if you trust the source"
        )


def _from_16bit(array: np.ndarray, what: str) -> np.ndarray:
    warnings.warn(f"{what} has more than 8 bits per sample; reducing to 8 bits", stacklevel=3)
    return np.clip(np.round(array.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)


def _from_array(array: np.ndarray) -> tuple[np.ndarray, ColourMode, "np.ndarray | None"]:
    """8-bit RGB pixels, the colour mode and the alpha plane (None when fully opaque)."""
    channel_first = array.ndim == 3 and array.shape[0] in (1, 3, 4)
    alpha = None
    if array.ndim == 2:
        array, mode = np.stack([array] * 3, axis=-1), ColourMode.L
    elif array.ndim == 3 and array.shape[2] in (3, 4):
        if array.shape[0] in (3, 4) and array.shape[1] > 4:  # (C, H, W) with W of 3 or 4 reads as (H, W, C)
            warnings.warn(
                f"an array of shape {array.shape} is read as (height, width, channels), a {array.shape[1]}x"
                f"{array.shape[0]} image; transpose a channel-first (C, H, W) array to (H, W, C)",
                stacklevel=3,
            )
        mode = ColourMode.RGB
        if array.shape[2] == 4:
            opaque = 255 if array.dtype == np.uint8 else 65535 if array.dtype == np.uint16 else 1.0
            transparent = not np.all(array[..., 3] == opaque)
            alpha = _to_8bit(array[..., 3:], "the alpha plane")[..., 0] if transparent else None
            array, mode = array[..., :3], ColourMode.RGBA if transparent else ColourMode.RGBA_OPAQUE
    elif channel_first:
        raise ImageError(
            f"an array of shape {array.shape} looks channel-first (C, H, W); pass (H, W, C), e.g. "
            f"array.transpose(1, 2, 0)"
        )
    else:
        raise ImageError(f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageError(f"empty image of shape {array.shape}")
    return _to_8bit(array, "the image"), mode, alpha


def _to_8bit(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.uint16:
        return _from_16bit(array, what)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ImageError("float images must hold finite values in [0, 1]")
        return np.round(array * 255).astype(np.uint8)
    raise ImageError(f"unsupported array dtype {array.dtype}; use uint8, uint16 or floats in [0, 1]")


def _deep_colour(image: Image.Image) -> bool:
    """Whether a file opened by Pillow (not yet loaded) stores more than 8 bits per colour sample:
    Pillow reads 16-bit colour PNGs as 8-bit RGB without a word."""
    raw_modes = [tile.args for tile in getattr(image, "tile", None) or []]
    return image.mode in ("RGB", "RGBA") and any(isinstance(raw, str) and ";16" in raw for raw in raw_modes)


@dataclass(frozen=True)
class Photo:
    """An image as dcae codes it: 8-bit RGB pixels, the source's colour mode, and what travels
    beside the colour (each None when absent): the alpha plane, the ICC colour profile, EXIF
    (its orientation reset to 1: the pixels are already upright) and XMP."""

    pixels: np.ndarray  # (H, W, 3) uint8
    mode: ColourMode
    alpha: "np.ndarray | None" = None  # (H, W) uint8, only when some pixel is not opaque
    icc_profile: "bytes | None" = None
    exif: "bytes | None" = None
    xmp: "bytes | None" = None


def _exif_upright(upright: Image.Image, had_orientation: bool) -> "bytes | None":
    """The EXIF block of an image whose pixels ``exif_transpose`` has turned upright (it drops
    the orientation tag): orientation 1 where the source had one, so viewers leave it be."""
    exif = upright.getexif()
    if not len(exif) and not exif.get_ifd(ExifTags.IFD.Exif) and not exif.get_ifd(ExifTags.IFD.GPSInfo):
        return None
    if had_orientation:
        exif[ExifTags.Base.Orientation] = 1
    return exif.tobytes()


def _from_pil(image: Image.Image, what: str = "the image", deep_colour: bool = False) -> Photo:
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        warnings.warn(f"{what} has {frames} frames; coding the first", stacklevel=3)
    if deep_colour:
        warnings.warn(f"{what} has more than 8 bits per sample; reducing to 8 bits", stacklevel=3)
    had_orientation = ExifTags.Base.Orientation in image.getexif()
    image = ImageOps.exif_transpose(image)  # a copy, upright; its EXIF and XMP orientation too
    exif = _exif_upright(image, had_orientation)
    pixels, mode, alpha = _pixels_of(image, what)
    xmp = image.info.get("xmp")
    return Photo(pixels, mode, alpha, image.info.get("icc_profile") or None, exif, bytes(xmp) if xmp else None)


def _pixels_of(image: Image.Image, what: str) -> tuple[np.ndarray, ColourMode, "np.ndarray | None"]:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.int64)
        if array.max(initial=0) > 65535 or array.min(initial=0) < 0:
            raise ImageError(f"unsupported {mode} image with values outside 0..65535")
        gray = _from_16bit(array, what)
        return np.stack([gray] * 3, axis=-1), ColourMode.L, None
    if mode == "F":
        raise ImageError("32-bit float images are not supported; convert to 8 or 16 bits first")
    if mode in ("P", "PA"):
        pixels, _, alpha = _from_array(np.asarray(image.convert("RGBA")))
        return pixels, ColourMode.RGBA if alpha is not None else ColourMode.P, alpha
    if mode in ("L", "1"):
        return np.stack([np.asarray(image.convert("L"))] * 3, axis=-1), ColourMode.L, None
    if mode == "LA":
        la = np.asarray(image)
        transparent = not np.all(la[..., 1] == 255)
        alpha = np.ascontiguousarray(la[..., 1]) if transparent else None
        return np.stack([la[..., 0]] * 3, axis=-1), ColourMode.LA if transparent else ColourMode.LA_OPAQUE, alpha
    if mode in ("RGBA", "RGBa"):
        return _from_array(np.asarray(image.convert("RGBA")))
    if mode != "RGB":
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, ...
    return np.ascontiguousarray(np.asarray(image)), ColourMode.RGB, None


@contextlib.contextmanager
def _pillow_pixel_limit() -> Iterator[None]:
    """Pillow refuses images above twice its own limit (``Image.MAX_IMAGE_PIXELS``) whatever
    the caller asked for. While dcae opens a file Pillow's limit is lifted: dcae checks the size
    (``max_pixels``) from the header itself, before any pixel is decoded; then the caller's
    setting comes back."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def read_photo(
    source: ImageLike,
    max_pixels: "int | None" = DEFAULT_MAX_PIXELS,
    check_size: "Callable[[int, int, str], None] | None" = None,
) -> Photo:
    """The :class:`Photo` of a path, a PIL image or a numpy array: its 8-bit RGB pixels, colour
    mode, alpha plane, ICC profile, EXIF and XMP.

    Accepts a path, a PIL image or a numpy array. EXIF orientation is applied; grayscale and
    palette images become RGB (and are restored on decoding); 16-bit samples are reduced to 8
    bits with a warning; of an animated image the first frame is taken, with a warning; an alpha
    plane is kept when some pixel is not opaque. Images above ``max_pixels`` are refused, and
    ``check_size(width, height, what)`` may refuse others (for a file, from its header, before
    its pixels are decoded).
    """

    def check(width: int, height: int, what: str) -> None:
        check_pixels(width, height, max_pixels, what)
        if check_size is not None:
            check_size(width, height, what)

    if isinstance(source, np.ndarray):
        if source.ndim >= 2:
            check(source.shape[1], source.shape[0], "the array")
        return Photo(*_from_array(source))
    if isinstance(source, Image.Image):
        check(*source.size, "the image")
        return _from_pil(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        check_readable(path, "image", ImageError)
        try:
            with warnings.catch_warnings(), _pillow_pixel_limit():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # dcae checks the size itself
                with Image.open(path) as image:
                    check(*image.size, str(path))
                    deep_colour = _deep_colour(image)
                    image.load()
                    return _from_pil(image, what=str(path), deep_colour=deep_colour)
        except DcaeError:  # refused by a check: already one clear line
            raise
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise ImageError(f"cannot read image {path}: {error}") from None
    raise ImageError(f"expected a path, PIL image or numpy array, got {type(source).__name__}")


def load_image(
    source: ImageLike,
    max_pixels: "int | None" = DEFAULT_MAX_PIXELS,
    check_size: "Callable[[int, int, str], None] | None" = None,
) -> tuple[np.ndarray, ColourMode]:
    """The (H, W, 3) uint8 RGB pixels and colour mode of an opaque image (:func:`read_photo`
    without the side parts; for training and measurement, where transparency has no meaning)."""
    photo = read_photo(source, max_pixels, check_size)
    if photo.alpha is not None:
        raise ImageError("an image with transparency cannot be used here: flatten its alpha channel first")
    return photo.pixels, photo.mode


def to_pil(array: np.ndarray, mode: ColourMode, alpha: "np.ndarray | None" = None) -> Image.Image:
    """A PIL image in the recorded colour mode from a decoded (H, W, 3) uint8 array, with its
    alpha plane for the RGBA and LA modes."""
    rgb = Image.fromarray(array, "RGB")
    if mode in (ColourMode.L, ColourMode.LA_OPAQUE, ColourMode.LA):
        gray = rgb.convert("L")
        if mode == ColourMode.L:
            return gray
        gray = gray.convert("LA")
        if alpha is not None:
            gray.putalpha(Image.fromarray(alpha, "L"))
        return gray
    if mode == ColourMode.P:
        return rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    if mode in (ColourMode.RGBA_OPAQUE, ColourMode.RGBA):
        rgba = rgb.convert("RGBA")
        if alpha is not None:
            rgba.putalpha(Image.fromarray(alpha, "L"))
        return rgba
    return rgb


def encode_alpha(alpha: np.ndarray) -> bytes:
    """An (H, W) uint8 alpha plane as a lossless image: WebP's lossless mode (25-40% smaller
    than PNG on the planes measured in docs/benchmarks.md), or a grayscale PNG where this
    Pillow has no WebP. Both name their format in their first bytes."""
    buffer = io.BytesIO()
    plane = Image.fromarray(np.ascontiguousarray(alpha), "L")
    if features.check("webp"):
        plane.save(buffer, format="WEBP", lossless=True, quality=100, method=4)
    else:
        plane.save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def decode_alpha(data: bytes, width: int, height: int) -> np.ndarray:
    """The (height, width) alpha plane stored by :func:`encode_alpha`; anything else (another
    size, a damaged or foreign image) raises :class:`dcae.errors.FormatError` before its pixels
    are decoded, so a crafted part cannot make dcae allocate more than the image."""
    try:
        with _pillow_pixel_limit(), Image.open(io.BytesIO(data), formats=["WEBP", "PNG"]) as image:
            if image.size != (width, height) or image.mode not in ("L", "RGB", "RGBA"):
                raise FormatError(f"the alpha plane is {image.mode} {image.size}, not {(width, height)}")
            image.load()
            plane = np.asarray(image)
            return np.ascontiguousarray(plane if plane.ndim == 2 else plane[..., 0])
    except (UnidentifiedImageError, OSError, ValueError) as error:
        if isinstance(error, FormatError):
            raise
        raise FormatError(f"the alpha plane is damaged: {error}") from None


def image_tensor(arrays: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 arrays to a (B, 3, H, W) float32 batch in [0, 1]."""
    return torch.from_numpy(np.array(arrays, dtype=np.uint8)).permute(0, 3, 1, 2).float().div(255)


def pad_image(x: torch.Tensor, stride: int, mode: PadMode = PadMode.REPLICATE) -> torch.Tensor:
    """Extend (B, 3, H, W) at the bottom and right to multiples of ``stride``.

    Reflection needs the padding to be smaller than the side; where it is not, replication is
    used for that call (the decoder only crops, so it need not know).
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % stride, -width % stride
    if not (pad_h or pad_w):
        return x
    use_reflect = mode == PadMode.REFLECT and pad_h < height and pad_w < width
    return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if use_reflect else "replicate")


def pad_pixels(pixels: np.ndarray, stride: int, mode: PadMode = PadMode.REPLICATE) -> np.ndarray:
    """:func:`pad_image` for (B, H, W, 3) uint8 pixels: the same values, a quarter of the memory."""
    height, width = pixels.shape[1:3]
    pad_h, pad_w = -height % stride, -width % stride
    if not (pad_h or pad_w):
        return pixels
    use_reflect = mode == PadMode.REFLECT and pad_h < height and pad_w < width
    return np.pad(pixels, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="reflect" if use_reflect else "edge")


def quantize_pixels(x_hat: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) floats to uint8 by clamping to [0, 1] and rounding."""
    return torch.round(x_hat.clamp(0, 1) * 255).to(torch.uint8)


def to_uint8(x_hat: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) floats to (B, H, W, 3) uint8 by clamping to [0, 1] and rounding."""
    return quantize_pixels(x_hat).permute(0, 2, 3, 1).cpu().numpy()
