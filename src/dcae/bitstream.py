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

Version 4 is version 2 or 3 with side parts (flag bit 3): after the quality map (if any) and
before the payload length, a count N (1 .. 4) and N parts, each a 4-byte ASCII tag (``ICCP``
colour profile, ``EXIF``, ``XMP_``, ``ALPH`` alpha plane), a u8 part version (1), a u32 raw
length, a u32 stored length and the stored bytes: zlib-deflated for ICCP, EXIF and XMP_; for
ALPH a lossless WebP (or a PNG) of the image's size whose first channel is the plane. Files
without side parts are still written as version 2 or 3.

Every field is checked before anything is allocated from it; a part is inflated to at most its
declared raw length, which is bounded (:data:`MAX_METADATA_BYTES`; for the alpha plane, exactly
one byte per pixel).
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
SIDE_PARTS_VERSION = 4  # files with an ICC profile, EXIF, XMP or an alpha plane
READABLE_VERSIONS = (1, 2, 3, 4)
MAX_SIDE = 32768
MAX_PIXELS = 16384 * 16384
MAX_PAYLOAD = 1 << 31
MAX_FILE_BYTES = MAX_PAYLOAD + 1024  # payload plus the largest header and the CRC
FLAG_QUALITY = 0x01
FLAG_PORTABLE = 0x02
FLAG_QUALITY_MAP = 0x04
FLAG_SIDE_PARTS = 0x08
MAX_MAP_LEVELS = 16
# The largest ICC profile, EXIF or XMP block a file may carry, inflated (ICC profiles run to a
# few hundred kB, EXIF to 64 kB in JPEG, XMP to a few MB with an embedded thumbnail).
MAX_METADATA_BYTES = 16 << 20
PART_VERSION = 1
_PART = struct.Struct("<4sBII")
_FIXED = struct.Struct("<4sBBBBIIfHBB")
_DIGEST_BYTES = 8


class ColourMode(enum.IntEnum):
    """How the source image stored colour; decoding returns to this mode."""

    RGB = 0
    L = 1  # grayscale
    P = 2  # palette
    RGBA_OPAQUE = 3  # RGBA whose alpha was fully opaque (dropped, restored as 255)
    LA_OPAQUE = 4  # grayscale with fully opaque alpha
    RGBA = 5  # colour with an alpha plane (version 4: the ALPH part); palette images with transparency too
    LA = 6  # grayscale with an alpha plane (version 4: the ALPH part)


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
class SideParts:
    """What a file carries besides the coded colour: the source's ICC colour profile, its EXIF
    and XMP metadata (bytes as the source held them), and the alpha plane as a lossless image
    (WebP or PNG) of the image's size. Each is ``None`` when absent."""

    icc_profile: "bytes | None" = None
    exif: "bytes | None" = None
    xmp: "bytes | None" = None
    alpha_image: "bytes | None" = None

    def __post_init__(self) -> None:
        for name, value in self._named():
            if value is not None and (not isinstance(value, bytes) or not value):
                raise FormatError(f"the {name} part must be non-empty bytes")
            if value is not None and name != "alpha" and len(value) > MAX_METADATA_BYTES:
                raise FormatError(f"the {name} part is {len(value):,} bytes, above {MAX_METADATA_BYTES:,}")

    def _named(self) -> list[tuple[str, "bytes | None"]]:
        return [("ICC profile", self.icc_profile), ("EXIF", self.exif), ("XMP", self.xmp), ("alpha", self.alpha_image)]

    def __bool__(self) -> bool:
        return any(value is not None for _, value in self._named())

    def _encode(self) -> bytes:
        parts = []
        for tag, value in zip(_TAGS, (self.icc_profile, self.exif, self.xmp, self.alpha_image)):
            if value is None:
                continue
            stored = value if tag == b"ALPH" else zlib.compress(value, 9)
            parts.append(_PART.pack(tag, PART_VERSION, len(value), len(stored)) + stored)
        return struct.pack("<B", len(parts)) + b"".join(parts)

    @classmethod
    def _decode(cls, data: bytes, offset: int, end: int) -> "SideParts":
        """The parts between ``offset`` and ``end`` (laid out as :func:`_skip_side_parts` checked)."""
        found: dict[bytes, bytes] = {}
        offset += 1
        while offset < end:
            tag, _, raw_length, stored_length = _PART.unpack_from(data, offset)
            offset += _PART.size
            stored = data[offset : offset + stored_length]
            offset += stored_length
            if tag == b"ALPH":
                found[tag] = stored
                continue
            unpacker = zlib.decompressobj()
            try:  # never inflate beyond the declared (bounded) length: no metadata bomb
                raw = unpacker.decompress(stored, raw_length + 1)
            except zlib.error:
                raise FormatError(f"the {tag.decode()} part is corrupted") from None
            if len(raw) != raw_length or not unpacker.eof:
                raise FormatError(f"the {tag.decode()} part does not have its declared length")
            found[tag] = raw
        return cls(*(found.get(tag) for tag in _TAGS))


_TAGS = (b"ICCP", b"EXIF", b"XMP_", b"ALPH")


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
    # ICC profile, EXIF, XMP, alpha plane (version 4); None: none of them.
    side_parts: "SideParts | None" = None

    @property
    def num_pixels(self) -> int:
        return self.width * self.height

    @property
    def format_version(self) -> int:
        """The format version a file with this header has: 1 without a latent checksum, 3 with
        a quality map, else 2 (:func:`pack` writes exactly this)."""
        if self.latent_checksum is None:
            return 1
        if self.side_parts:
            return SIDE_PARTS_VERSION
        return QUALITY_MAP_VERSION if self.quality_map is not None else FORMAT_VERSION


def pack(header: Header, payload: bytes) -> bytes:
    """Serialise a header and payload into a complete ``.dcae`` file.

    Writes version 2, version 3 when the header carries a quality map, version 4 when it carries
    side parts; a header without a latent checksum is written as version 1 (the layout older
    dcae releases wrote; kept so compatibility can be tested).
    """
    name = header.architecture.encode("ascii")
    if not 1 <= len(name) <= 32:
        raise ValueError("architecture name must be 1..32 ASCII characters")
    if len(header.digest) != _DIGEST_BYTES:
        raise ValueError("digest must be 8 bytes")
    check_size(header.width, header.height)
    version = header.format_version
    if version == 1 and (header.portable or header.quality_map is not None or header.side_parts):
        raise ValueError("portable files, quality maps and side parts need a latent checksum (version 2 and up)")
    has_alpha = bool(header.side_parts and header.side_parts.alpha_image)
    if (header.colour_mode in (ColourMode.RGBA, ColourMode.LA)) != has_alpha:
        raise ValueError("an alpha plane goes with the RGBA and LA colour modes, and only with them")
    if header.quality_map is not None:
        if (header.quality_map.rows, header.quality_map.columns) != latent_size(header.width, header.height):
            raise ValueError("the quality map must cover the image's latent positions")
    flags = (FLAG_QUALITY if header.quality is not None else 0) | (FLAG_PORTABLE if header.portable else 0)
    flags |= FLAG_QUALITY_MAP if header.quality_map is not None else 0
    flags |= FLAG_SIDE_PARTS if header.side_parts else 0
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
    side_parts = header.side_parts._encode() if header.side_parts else b""
    length = struct.pack("<I", len(payload))
    body = fixed + name + header.digest + checksum + quality_map + side_parts + length + payload
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
    known_flags |= FLAG_SIDE_PARTS if version >= 4 else 0
    if flags & ~known_flags:
        raise FormatError(f"unknown flags 0x{flags:02x} in .dcae header")
    if version == SIDE_PARTS_VERSION and not flags & FLAG_SIDE_PARTS:
        raise FormatError("a version 4 .dcae file without side parts")
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
    parts_offset = offset
    if flags & FLAG_SIDE_PARTS:  # the same
        offset = _skip_side_parts(data, offset, width * height)
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
    side_parts = SideParts._decode(data, parts_offset, offset - 4) if flags & FLAG_SIDE_PARTS else None
    if (colour_mode in (ColourMode.RGBA, ColourMode.LA)) != bool(side_parts and side_parts.alpha_image):
        raise FormatError(f"colour mode {colour_mode.name} and the file's alpha plane do not go together")
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
        side_parts=side_parts,
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


def _skip_side_parts(data: bytes, offset: int, pixels: int) -> int:
    """The offset just after the side parts (every tag, version and length checked; nothing
    inflated)."""
    if offset >= len(data):
        raise FormatError("truncated .dcae file (side parts missing)")
    count, offset = data[offset], offset + 1
    if not 1 <= count <= len(_TAGS):
        raise FormatError(f"invalid number of side parts ({count})")
    seen: list[bytes] = []
    for _ in range(count):
        if len(data) < offset + _PART.size:
            raise FormatError("truncated .dcae file (side parts)")
        tag, version, raw_length, stored_length = _PART.unpack_from(data, offset)
        if tag not in _TAGS or tag in seen or (seen and _TAGS.index(tag) < _TAGS.index(seen[-1])):
            raise FormatError(f"unknown, repeated or misplaced side part {tag!r}")
        if version != PART_VERSION:
            raise FormatError(f"unsupported version {version} of the {tag.decode()} part")
        limit = MAX_METADATA_BYTES if tag != b"ALPH" else MAX_METADATA_BYTES + 2 * pixels
        if raw_length < 1 or raw_length > limit or stored_length > len(data) - offset - _PART.size:
            raise FormatError(f"invalid or truncated {tag.decode()} part ({raw_length} bytes)")
        if tag == b"ALPH" and raw_length != stored_length:
            raise FormatError("the alpha part's lengths disagree")
        seen.append(tag)
        offset += _PART.size + stored_length
    return offset


def header_size(header: Header) -> int:
    """Bytes of a file that are not payload (header plus CRC)."""
    checksum_bytes = 0 if header.latent_checksum is None else 4
    quality_map = 0 if header.quality_map is None else len(header.quality_map._encode())
    side_parts = len(header.side_parts._encode()) if header.side_parts else 0
    name = len(header.architecture.encode("ascii"))
    return _FIXED.size + name + _DIGEST_BYTES + checksum_bytes + quality_map + side_parts + 4 + 4
