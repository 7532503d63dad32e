"""The Pillow plugin: open, load, save and the extension, with Pillow's error conventions."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from conftest import random_image
from PIL import Image, UnidentifiedImageError

import dcae.pillow
from dcae import bitstream
from dcae.codec import load_codec

dcae.pillow.register()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A 96x72 smooth random RGB image."""
    return Image.fromarray(random_image(72, 96))


def test_the_format_is_registered() -> None:
    assert Image.registered_extensions()[".dcae"] == "DCAE"
    assert "DCAE" in Image.SAVE and "DCAE" in Image.OPEN


def test_save_then_open_from_a_path_and_a_file_object(photo: Image.Image, tmp_path: Path, monkeypatch) -> None:
    from dcae.codec import Codec

    path = tmp_path / "photo.dcae"
    photo.save(path, quality=3)
    data = path.read_bytes()
    assert bitstream.unpack(data)[0].quality == 3.0
    expected = load_codec("default").decompress(data).pixels
    decodes = []
    original = Codec.decompress
    monkeypatch.setattr(Codec, "decompress", lambda self, *a, **k: decodes.append(1) or original(self, *a, **k))
    for source in (path, io.BytesIO(data)):
        with Image.open(source) as image:
            assert image.format == "DCAE" and image.size == (96, 72) and image.mode == "RGB"
            assert image.info["dcae_quality"] == 3.0
            before = len(decodes)  # the header alone gave size and mode
            pixels = np.asarray(image)
            assert len(decodes) == before + 1  # the pixels were decoded on load()
        assert np.abs(pixels.astype(int) - expected.astype(int)).max() <= 1
    assert len(decodes) == 2


def test_save_with_a_target_size_and_a_grayscale_source(tmp_path: Path) -> None:
    gray = Image.fromarray(random_image(64, 64)[..., 0], "L")
    path = tmp_path / "gray.dcae"
    gray.save(path, target_size=400)
    assert path.stat().st_size <= 400
    with Image.open(path) as image:
        assert image.mode == "L"
        image.load()
        assert image.getpixel((0, 0)) is not None


def test_foreign_files_are_left_to_other_plugins(tmp_path: Path) -> None:
    png = tmp_path / "real.png"
    Image.fromarray(random_image(8, 8)).save(png)
    with Image.open(png) as image:
        assert image.format == "PNG"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"nothing an image plugin knows")
    with pytest.raises(UnidentifiedImageError):
        Image.open(junk)


def test_a_damaged_file_raises_oserror_with_dcaes_message(photo: Image.Image, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    photo.save(buffer, format="DCAE")
    damaged = bytearray(buffer.getvalue())
    damaged[30] ^= 0xFF
    with pytest.raises(OSError, match="CRC32"):
        Image.open(io.BytesIO(bytes(damaged)))


def test_a_file_from_a_model_that_is_not_installed_says_which(photo: Image.Image) -> None:
    import dataclasses

    buffer = io.BytesIO()
    photo.save(buffer, format="DCAE")
    header, payload = bitstream.unpack(buffer.getvalue())
    foreign = bitstream.pack(dataclasses.replace(header, digest=b"\x22" * 8), payload)
    with Image.open(io.BytesIO(foreign)) as image, pytest.raises(OSError, match="no released model"):
        image.load()
