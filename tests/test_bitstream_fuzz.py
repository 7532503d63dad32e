"""Hostile .dcae files: only a clean error (or a valid image) may come out, with bounded work.

Hypothesis fuzzes raw bytes, single-bit flips, truncations, overwrites, and crafted headers
whose CRC is valid (an attacker recomputes it), so every field reaches the decoder's checks.
"""

from __future__ import annotations

import dataclasses
from unittest import mock

import pytest
from conftest import TINY_VR, random_image, random_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcae import bitstream
from dcae.codec import Codec, CodecOptions
from dcae.errors import DcaeError, FormatError, ModelMismatchError
from dcae.latent_coder import LatentCoder

CODEC = Codec(random_model("tiny"))
VALID = CODEC.compress(random_image(40, 40)).data
HEADER, PAYLOAD = bitstream.unpack(VALID)
FUZZ = settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.too_slow])


def _decode_or_refuse(data: bytes) -> None:
    """A file is either refused with a DcaeError or decodes to an image of its declared size."""
    try:
        decoded = CODEC.decompress(data)
    except DcaeError:
        return
    assert decoded.pixels.shape == (decoded.header.height, decoded.header.width, 3)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _decode_or_refuse(data)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_behind_the_magic(tail: bytes) -> None:
    _decode_or_refuse(b"DCAE" + tail)


@FUZZ
@given(st.integers(0, len(VALID) * 8 - 1))
def test_any_single_bit_flip_is_detected(bit: int) -> None:
    damaged = bytearray(VALID)
    damaged[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises((FormatError, ModelMismatchError)):
        CODEC.decompress(bytes(damaged))


@FUZZ
@given(st.integers(0, len(VALID) - 1))
def test_every_truncation_is_detected(length: int) -> None:
    with pytest.raises(FormatError):
        CODEC.decompress(VALID[:length])


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_byte_overwrites(changes: list[tuple[int, int]]) -> None:
    damaged = bytearray(VALID)
    for position, value in changes:
        damaged[position] = value
    _decode_or_refuse(bytes(damaged))


def test_the_valid_file_decodes() -> None:
    decoded = CODEC.decompress(VALID)
    assert decoded.pixels.shape == (40, 40, 3) and decoded.header == HEADER


@FUZZ
@given(st.binary(max_size=64).map(lambda b: b + b"\x00" * (-len(b) % 4)))
def test_crc_valid_files_with_arbitrary_payloads(payload: bytes) -> None:
    """A crafted file passes the CRC; its payload must still only ever give a clean error."""
    _decode_or_refuse(bitstream.pack(HEADER, payload))


crafted_headers = st.builds(
    lambda width, height, quality, table, slices, mode, pad, portable: dataclasses.replace(
        HEADER,
        width=width,
        height=height,
        quality=quality,
        scale_table_size=table,
        num_slices=slices,
        colour_mode=mode,
        pad_mode=pad,
        portable=portable,
    ),
    st.integers(1, bitstream.MAX_SIDE),
    st.integers(1, bitstream.MAX_SIDE),
    st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=32)),
    st.integers(2, 4096),
    st.integers(1, 255),
    st.sampled_from(list(bitstream.ColourMode)),
    st.sampled_from(list(bitstream.PadMode)),
    st.booleans(),
)


@FUZZ
@given(crafted_headers, st.sampled_from([b"", PAYLOAD, PAYLOAD[:4], PAYLOAD * 3]))
def test_crafted_headers_with_valid_crcs_are_refused_before_any_large_work(
    header: bitstream.Header, payload: bytes
) -> None:
    """Any header field values an attacker can write (the CRC recomputed) end in a clean error
    or a valid image; a declared size the payload cannot hold is refused before decoding."""
    try:
        data = bitstream.pack(header, payload)
    except (FormatError, ValueError):
        return  # the packer itself refuses values no file can hold (sizes beyond the format)
    latent_size = (-(-header.height // 64) * 4, -(-header.width // 64) * 4)
    if len(payload) < CODEC.latents.minimum_payload_bytes(latent_size):
        with mock.patch.object(LatentCoder, "decode", _must_not_decode), pytest.raises(DcaeError):
            CODEC.decompress(data)
    else:
        _decode_or_refuse(data)


def _must_not_decode(*_args, **_kwargs):
    raise AssertionError("a file whose payload cannot hold its declared image reached the decoder")


def test_a_tiny_file_declaring_a_huge_image_is_refused_at_once() -> None:
    """The 100-byte file that claimed 16384x16384 used to allocate gigabytes for minutes."""
    shipped = Codec(random_model("tiny"), options=CodecOptions(max_pixels=None))
    data = bitstream.pack(dataclasses.replace(HEADER, width=16384, height=16384), PAYLOAD)
    with pytest.raises(FormatError, match="too short"):
        shipped.decompress(data)
    with pytest.raises(DcaeError, match="above the limit"):
        CODEC.decompress(data)  # the default pixel limit refuses it even earlier


def test_a_header_names_the_format_version_its_file_has() -> None:
    codec = Codec(random_model(TINY_VR))
    compressed = codec.compress(random_image(64, 64), quality=1.0)
    assert compressed.header == bitstream.unpack(compressed.data)[0]  # the header the codec built is the file's
    assert compressed.header.format_version == compressed.data[4] == 2
    old = dataclasses.replace(compressed.header, latent_checksum=None, portable=False)
    assert bitstream.pack(old, b"")[4] == old.format_version == 1
