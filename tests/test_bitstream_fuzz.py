"""Hypothesis fuzzing of the .dcae parser: only FormatError may come out, and quickly."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_image, random_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcae import bitstream
from dcae.bitstream import FormatError
from dcae.codec import Codec, ModelMismatchError

CODEC = Codec(random_model("tiny"))
VALID = CODEC.compress(random_image(40, 40))
FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def _decode_or_format_error(data: bytes) -> None:
    try:
        out = CODEC.decompress(data)
    except (FormatError, ModelMismatchError):
        return
    # A damaged file that still passes every check must at least decode to the right size.
    header, _ = bitstream.unpack(data)
    assert out.shape == (header.height, header.width, 3)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _decode_or_format_error(data)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_behind_the_magic(tail: bytes) -> None:
    _decode_or_format_error(b"DCAE" + tail)


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
    _decode_or_format_error(bytes(damaged))


def test_valid_file_still_decodes() -> None:
    assert CODEC.decompress(VALID).shape == (40, 40, 3)
    assert isinstance(np.asarray(CODEC.decompress(VALID)), np.ndarray)


@FUZZ
@given(st.binary(max_size=64).map(lambda b: b + b"\x00" * (-len(b) % 4)))
def test_crc_valid_files_with_arbitrary_payloads(payload: bytes) -> None:
    """A crafted file passes the CRC; the payload must still only ever give a FormatError."""
    header, _ = bitstream.unpack(VALID)
    _decode_or_format_error(bitstream.pack(header, payload))
