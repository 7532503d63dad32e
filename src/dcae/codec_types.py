"""What a codec takes and gives: its options, compressed files and decoded images."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .bitstream import Header, PadMode
from .entropy.tables import DEFAULT_SCALE_TABLE_SIZE
from .entropy_parameters import DEFAULT_CHUNK
from .errors import ConfigError, QualityError
from .image_formats import xmp_png_chunk
from .imageio import DEFAULT_MAX_PIXELS, to_pil
from .tiling import DEFAULT_HALO


def is_whole(value: Any) -> bool:
    """Whether ``value`` is an integer (numpy's included), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (numpy's included), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True)
class CodecOptions:
    """How a :class:`Codec` codes; every field has the default users get.

    Attributes:
        portable: compute the entropy parameters (everything that decides the probability of a
            coded symbol) in float64 on the CPU (:mod:`dcae.entropy_parameters`), so the file decodes to
            the same latents on any machine. ``False`` computes them in float32 on the codec's
            device: faster, but such a machine-specific file decodes only where the arithmetic
            matches the encoder's (elsewhere decoding raises ``LatentMismatchError``). The
            choice is recorded in the file and the decoder follows it.
        optimize_steps: gradient steps the encoder spends adapting each image's latents before
            coding (:mod:`dcae.latent_optimization`): smaller files at equal quality, each step
            about the work of a training step. Decoding is unchanged.
        scale_table_size: number of scales in the y coder's table.
        pad_mode: how images are extended to the model stride.
        tile: side (pixels, a multiple of the model stride) of the tiles the analysis and
            synthesis transforms run on; ``None`` tiles only large images, ``0`` never tiles.
            Entropy coding always covers the whole image, so tiling changes memory use, not the
            file.
        halo: context around each tile, in pixels (a multiple of the model stride).
        entropy_chunk: side, in latent positions (16 pixels each, a multiple of 4), of the chunks
            the entropy-parameter networks run on, which bounds their memory; ``0`` runs every
            image in one piece. Any chunk gives the same file (docs/format.md).
        keep_metadata: carry the source's EXIF and XMP into the file (``False``: ``--strip``,
            for privacy: EXIF often holds the place a photo was taken). The ICC colour profile
            is colour, not metadata: it is always kept.
        max_pixels: the largest image (width x height) to encode or decode, against
            decompression bombs; ``None`` lifts the limit. Pillow's default.
        onnx_synthesis: a folder written by ``dcae export MODEL --onnx DIR`` for these weights:
            decoding then runs the synthesis transform in onnxruntime (about a third faster on
            this project's CPU; pixels within the same one-level guarantee).
    """

    portable: bool = True
    optimize_steps: int = 0
    scale_table_size: int = DEFAULT_SCALE_TABLE_SIZE
    pad_mode: PadMode = PadMode.REPLICATE
    tile: "int | None" = None
    halo: int = DEFAULT_HALO
    entropy_chunk: int = DEFAULT_CHUNK
    keep_metadata: bool = True
    max_pixels: "int | None" = DEFAULT_MAX_PIXELS
    onnx_synthesis: "str | None" = None

    def __post_init__(self) -> None:
        if self.max_pixels is not None and (not is_whole(self.max_pixels) or self.max_pixels < 1):
            raise ConfigError(f"max_pixels must be a positive whole number or None, got {self.max_pixels!r}")
        if not is_whole(self.optimize_steps) or self.optimize_steps < 0:
            raise QualityError(f"optimize_steps must be a whole number >= 0, got {self.optimize_steps!r}")
        if not is_whole(self.entropy_chunk) or self.entropy_chunk < 0 or self.entropy_chunk % 4:
            raise ConfigError(f"entropy_chunk must be 0 or a positive multiple of 4, got {self.entropy_chunk!r}")
        if not is_whole(self.scale_table_size) or not 2 <= self.scale_table_size <= 4096:
            raise ConfigError(f"scale_table_size must be in 2..4096, got {self.scale_table_size!r}")
        object.__setattr__(self, "pad_mode", PadMode(self.pad_mode))


@dataclass(frozen=True)
class CompressedImage:
    """A ``.dcae`` file and what it holds; ``bytes(result)`` is the file."""

    data: bytes
    header: Header
    seconds: float = field(compare=False)  # encoding time (a batch's time is shared evenly)

    def __bytes__(self) -> bytes:
        return self.data

    def __len__(self) -> int:
        """The file's size in bytes."""
        return len(self.data)

    @property
    def bpp(self) -> float:
        """Bits per pixel of the whole file (header included)."""
        return 8 * len(self.data) / self.header.num_pixels


@dataclass(frozen=True)
class DecodedImage:
    """The pixels of a decoded file, its alpha plane, and its header (which holds the ICC
    profile, EXIF and XMP the file carries)."""

    pixels: np.ndarray  # (H, W, 3) uint8 RGB
    header: Header
    seconds: float = field(compare=False)  # decoding time (a batch's time is shared evenly)
    alpha: "np.ndarray | None" = field(default=None, compare=False)  # (H, W) uint8, exactly as coded

    @property
    def icc_profile(self) -> "bytes | None":
        """The source's ICC colour profile, byte for byte."""
        return self.header.side_parts.icc_profile if self.header.side_parts else None

    @property
    def exif(self) -> "bytes | None":
        """The source's EXIF block (orientation 1: the pixels are upright)."""
        return self.header.side_parts.exif if self.header.side_parts else None

    @property
    def xmp(self) -> "bytes | None":
        """The source's XMP packet."""
        return self.header.side_parts.xmp if self.header.side_parts else None

    def to_pil(self) -> Image.Image:
        """A PIL image in the source's colour mode (grayscale stays grayscale, transparency
        returns) that saves the ICC profile, EXIF and XMP into PNG, JPEG, WebP and TIFF: they
        are in its ``info`` and its ``encoderinfo``, which Pillow (11 and later) applies to
        every ``save`` and whose values win over ``save``'s own (empty it to leave them out)."""
        image = to_pil(self.pixels, self.header.colour_mode, self.alpha)
        carried = {"icc_profile": self.icc_profile, "exif": self.exif, "xmp": self.xmp}
        carried = {key: value for key, value in carried.items() if value is not None}
        image.info.update(carried)
        image.encoderinfo = dict(carried)
        if self.xmp is not None:  # PNG takes XMP as a text chunk
            image.encoderinfo["pnginfo"] = xmp_png_chunk(self.xmp)
        return image
