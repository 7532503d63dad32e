"""The ``.dcae`` container: a small fixed header, the entropy-coded payload, a CRC32.

Layout of version 2 (all integers little-endian; see ``docs/format.md``)::

    offset size field
    0      4    magic b"DCAE"
    4      1    format version (2; version 1 files, without the latent checksum, are read too)
    5      1    flags: bit 0 = quality present; bit 1 = portable entropy parameters (float64);
                bit 2 = quality map (version 3); other bits must be 0
    6      1    colour mode of the source image (ColourMode)
    7      1    padding mode used before coding (0 replicate, 1 reflect)
    8      4    width  (1 .. MAX_SIDE)
    12     4    height (1 .. MAX_SIDE)
    16     4    quality, float32 (0.0 when the flag is clear)
    20     2    scale-table size of the y coder
    22     1    number of y slices
    23     1    length L of the architecture name (1 .. 32)
    24     L    architecture name, ASCII
    24+L   8    first 8 bytes of the SHA-256 digest of the model weights
    32+L   4    latent checksum: CRC32 of the coded integer latents (absent in version 1)
    36+L   4    payload length P
    40+L   P    payload (rANS words)
    40+L+P 4    CRC32 of every preceding byte

Version 3 is version 2 with a quality map (flag bit 2): between the latent checksum and the
payload length, a count K (1 .. 16), K float32 qualities, a u32 length and that many bytes of
zlib-compressed level indexes, one byte per latent position in raster order. Files without a
map are still written as version 2.

Every field is checked before anything is allocated from it.
"""

from __future__ import annotations

import enum
import math
import struct
import zlib
from dataclasses import dataclass

from .config import HYPER_RATIO, STRIDE
from .errors import FormatError

MAGIC = b"DCAE"
FORMAT_VERSION = 2  # files without a quality map; with one, QUALITY_MAP_VERSION
QUALITY_MAP_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
MAX_SIDE = 32768
MAX_PIXELS = 16384 * 16384
MAX_PAYLOAD = 1 << 31
MAX_FILE_BYTES = MAX_PAYLOAD + 1024  # payload plus the largest header and the CRC
FLAG_QUALITY = 0x01
FLAG_PORTABLE = 0x02
FLAG_QUALITY_MAP = 0x04
MAX_MAP_LEVELS = 16
_FIXED = struct.Struct("<4sBBBBIIfHBB")
_DIGEST_BYTES = 8


class ColourMode(enum.IntEnum):
    """How the source image stored colour; decoding returns to this mode."""

    RGB = 0
    L = 1  # grayscale
    P = 2  # palette
    RGBA_OPAQUE = 3  # RGBA whose alpha was fully opaque (dropped, restored as 255)
    LA_OPAQUE = 4  # grayscale with fully opaque alpha


class PadMode(enum.IntEnum):
    """How the image was extended to a multiple of the model stride before coding."""

    REPLICATE = 0
    REFLECT = 1


@dataclass(frozen=True)
class QualityMap:
    """A quality per position of the latent y (one 16x16 pixel block each): ``levels[i]`` for
    every position whose entry in ``indexes`` (raster order, one byte each) is ``i``."""

    levels: tuple[float, ...]
    rows: int
    columns: int
    indexes: bytes

    def __post_init__(self) -> None:
        if not 1 <= len(self.levels) <= MAX_MAP_LEVELS:
            raise FormatError(f"a quality map has 1..{MAX_MAP_LEVELS} levels, not {len(self.levels)}")
        if len(self.indexes) != self.rows * self.columns:
            raise FormatError("the quality map does not cover the image's latent positions")
        if self.indexes and max(self.indexes) >= len(self.levels):
            raise FormatError("the quality map names a level it does not hold")
        if not all(math.isfinite(q) and q >= 0 for q in self.levels):
            raise FormatError(f"invalid qualities {self.levels} in the quality map")

    def _encode(self) -> bytes:
        packed = zlib.compress(self.indexes, 9)
        levels = struct.pack(f"<B{len(self.levels)}f", len(self.levels), *self.levels)
        return levels + struct.pack("<I", len(packed)) + packed

    @classmethod
    def _decode(cls, data: bytes, offset: int, rows: int, columns: int) -> tuple["QualityMap", int]:
        """The map at ``offset`` of a file whose image has latent size (rows, columns), and the
        offset after it."""
        end = _skip_quality_map(data, offset)
        count = data[offset]
        levels = struct.unpack_from(f"<{count}f", data, offset + 1)
        unpacker = zlib.decompressobj()
        try:  # never inflate beyond one byte per latent position: no zip bomb
            indexes = unpacker.decompress(data[offset + 5 + 4 * count : end], rows * columns + 1)
        except zlib.error:
            raise FormatError("the quality map is corrupted") from None
        if len(indexes) != rows * columns or not unpacker.eof:
            raise FormatError("the quality map does not match the image size")
        return cls(tuple(levels), rows, columns, indexes), end


@dataclass(frozen=True)
class Header:
    """Everything a decoder needs besides the payload."""

    width: int
    height: int
    architecture: str
    digest: bytes
    quality: "float | None"
    scale_table_size: int
    num_slices: int
    colour_mode: ColourMode = ColourMode.RGB
    pad_mode: PadMode = PadMode.REPLICATE
    # CRC32 of the integer latents the encoder coded; None only in version 1 files.
    latent_checksum: "int | None" = None
    # The entropy parameters were computed in float64 (see dcae.codec); always False in version 1.
    portable: bool = False
    # Qualities per latent position (regions of interest), version 3 only; None: ``quality`` everywhere.
    quality_map: "QualityMap | None" = None

    @property
    def num_pixels(self) -> int:
        return self.width * self.height

    @property
    def format_version(self) -> int:
        """The format version a file with this header has: 1 without a latent checksum, 3 with
        a quality map, else 2 (:func:`pack` writes exactly this)."""
        if self.latent_checksum is None:
            return 1
        return QUALITY_MAP_VERSION if self.quality_map is not None else FORMAT_VERSION


def pack(header: Header, payload: bytes) -> bytes:
    """Serialise a header and payload into a complete ``.dcae`` file.

    Writes version 2, or version 3 when the header carries a quality map; a header without a
    latent checksum is written as version 1 (the layout older dcae releases wrote; kept so
    compatibility can be tested).
    """
    name = header.architecture.encode("ascii")
    if not 1 <= len(name) <= 32:
        raise ValueError("architecture name must be 1..32 ASCII characters")
    if len(header.digest) != _DIGEST_BYTES:
        raise ValueError("digest must be 8 bytes")
    check_size(header.width, header.height)
    version = header.format_version
    if version == 1 and (header.portable or header.quality_map is not None):
        raise ValueError("portable files and quality maps need format version 2 or 3 (a latent checksum)")
    if header.quality_map is not None:
        if (header.quality_map.rows, header.quality_map.columns) != latent_size(header.width, header.height):
            raise ValueError("the quality map must cover the image's latent positions")
    flags = (FLAG_QUALITY if header.quality is not None else 0) | (FLAG_PORTABLE if header.portable else 0)
    flags |= FLAG_QUALITY_MAP if header.quality_map is not None else 0
    fixed = _FIXED.pack(
        MAGIC,
        version,
        flags,
        int(header.colour_mode),
        int(header.pad_mode),
        header.width,
        header.height,
        float(header.quality or 0.0),
        header.scale_table_size,
        header.num_slices,
        len(name),
    )
    checksum = b"" if version == 1 else struct.pack("<I", header.latent_checksum)
    quality_map = b"" if header.quality_map is None else header.quality_map._encode()
    body = fixed + name + header.digest + checksum + quality_map + struct.pack("<I", len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body))


def latent_size(width: int, height: int) -> tuple[int, int]:
    """(rows, columns) of the latent y of an image: padded to multiples of ``STRIDE`` pixels,
    then one position per ``LATENT_STRIDE`` x ``LATENT_STRIDE`` block."""
    return -(-height // STRIDE) * HYPER_RATIO, -(-width // STRIDE) * HYPER_RATIO


def check_size(width: int, height: int) -> None:
    """Raise :class:`FormatError` unless a ``.dcae`` file can hold an image of this size."""
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE) or width * height > MAX_PIXELS:
        raise FormatError(
            f"image size {width}x{height} is outside the supported range "
            f"(sides 1..{MAX_SIDE}, at most {MAX_PIXELS} pixels)"
        )


def unpack(data: bytes) -> tuple[Header, bytes]:
    """Parse and verify a ``.dcae`` file; raise :class:`FormatError` on any problem."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise FormatError("not a .dcae file (wrong magic bytes)")
    if len(data) < _FIXED.size:
        raise FormatError("truncated .dcae file (header incomplete)")
    magic, version, flags, mode, pad, width, height, quality, table_size, slices, name_len = _FIXED.unpack_from(data)
    if version not in READABLE_VERSIONS:
        raise FormatError(
            f"unsupported .dcae format version {version} (this dcae reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))})"
        )
    known_flags = FLAG_QUALITY | (FLAG_PORTABLE if version >= 2 else 0) | (FLAG_QUALITY_MAP if version >= 3 else 0)
    if flags & ~known_flags:
        raise FormatError(f"unknown flags 0x{flags:02x} in .dcae header")
    try:
        colour_mode, pad_mode = ColourMode(mode), PadMode(pad)
    except ValueError:
        raise FormatError(f"invalid colour mode {mode} or padding mode {pad} in .dcae header") from None
    check_size(width, height)
    if not 1 <= name_len <= 32:
        raise FormatError(f"invalid architecture-name length {name_len}")
    if not 2 <= table_size <= 4096 or slices < 1:
        raise FormatError(f"invalid coder parameters (scale table {table_size}, slices {slices})")
    if flags & FLAG_QUALITY:
        if not math.isfinite(quality) or quality < 0:
            raise FormatError(f"invalid quality {quality} in .dcae header")
    offset = _FIXED.size
    checksum_bytes = 4 if version >= 2 else 0
    end_of_header = offset + name_len + _DIGEST_BYTES + checksum_bytes + 4
    if len(data) < end_of_header + 4:
        raise FormatError("truncated .dcae file (header incomplete)")
    try:
        architecture = data[offset : offset + name_len].decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("architecture name in .dcae header is not ASCII") from None
    offset += name_len
    digest = data[offset : offset + _DIGEST_BYTES]
    offset += _DIGEST_BYTES
    latent_checksum = struct.unpack_from("<I", data, offset)[0] if checksum_bytes else None
    offset += checksum_bytes
    map_offset = offset
    if flags & FLAG_QUALITY_MAP:  # skipped now, read once the CRC has vouched for it
        offset = _skip_quality_map(data, offset)
    if len(data) < offset + 8:
        raise FormatError("truncated .dcae file (header incomplete)")
    (payload_length,) = struct.unpack_from("<I", data, offset)
    offset += 4
    if payload_length > MAX_PAYLOAD or offset + payload_length + 4 != len(data):
        expected = offset + payload_length + 4
        kind = "truncated" if len(data) < expected else "has trailing bytes or a wrong length field"
        raise FormatError(f".dcae file {kind} (expected {expected} bytes, got {len(data)})")
    (stored_crc,) = struct.unpack_from("<I", data, offset + payload_length)
    if zlib.crc32(data[: offset + payload_length]) != stored_crc:
        raise FormatError(".dcae file is corrupted (CRC32 mismatch)")
    quality_map = None
    if flags & FLAG_QUALITY_MAP:
        quality_map, _ = QualityMap._decode(data, map_offset, *latent_size(width, height))
    header = Header(
        width=width,
        height=height,
        architecture=architecture,
        digest=digest,
        quality=float(quality) if flags & FLAG_QUALITY else None,
        scale_table_size=table_size,
        num_slices=slices,
        colour_mode=colour_mode,
        pad_mode=pad_mode,
        latent_checksum=latent_checksum,
        portable=bool(flags & FLAG_PORTABLE),
        quality_map=quality_map,
    )
    return header, data[offset : offset + payload_length]


def model_digest(data: bytes) -> bytes:
    """The model identifier of a file, read without checking the rest (for finding the model
    that decodes it, whose :func:`unpack` then checks everything)."""
    if len(data) >= _FIXED.size and data[:4] == MAGIC:
        name_length = data[_FIXED.size - 1]
        start = _FIXED.size + name_length
        if 1 <= name_length <= 32 and len(data) >= start + _DIGEST_BYTES:
            return bytes(data[start : start + _DIGEST_BYTES])
    return unpack(data)[0].digest  # raises the FormatError that names the problem


def _skip_quality_map(data: bytes, offset: int) -> int:
    """The offset just after a quality map section (its lengths checked, its contents not read)."""
    if offset >= len(data):
        raise FormatError("truncated .dcae file (quality map missing)")
    count = data[offset]
    end = offset + 1 + 4 * count + 4
    if not 1 <= count <= MAX_MAP_LEVELS or len(data) < end:
        raise FormatError(f"invalid or truncated quality map ({count} levels)")
    (length,) = struct.unpack_from("<I", data, end - 4)
    if length > len(data) - end:
        raise FormatError("truncated .dcae file (quality map)")
    return end + length


def header_size(header: Header) -> int:
    """Bytes of a file that are not payload (header plus CRC)."""
    checksum_bytes = 0 if header.latent_checksum is None else 4
    quality_map = 0 if header.quality_map is None else len(header.quality_map._encode())
    name = len(header.architecture.encode("ascii"))
    return _FIXED.size + name + _DIGEST_BYTES + checksum_bytes + quality_map + 4 + 4
