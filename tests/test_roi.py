"""Regions of interest: a quality map coded in the file (format version 3) puts the bits there."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_VR, kodak_path, needs_shared, random_image, random_model
from PIL import Image

from dcae import bitstream
from dcae.cli import main
from dcae.codec import Codec, load_codec
from dcae.errors import FormatError, QualityError
from dcae.quality_map import roi_quality_map, to_latent_map


@pytest.fixture(scope="module")
def shipped() -> Codec:
    """The shipped model's codec, loaded once for the module."""
    return load_codec("default")


def _box(height: int, width: int, top: int, left: int, size: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[top : top + size, left : left + size] = True
    return mask


def test_the_map_takes_each_blocks_highest_quality() -> None:
    pixel_map = roi_quality_map(_box(40, 70, 20, 30, 5), 1.0, 4.5)
    latent = to_latent_map(pixel_map, 70, 40)
    assert (latent.rows, latent.columns) == (4, 8) and latent.levels == (1.0, 4.5)
    grid = np.frombuffer(latent.indexes, np.uint8).reshape(4, 8)
    assert grid[1, 1] == 1 and grid[1, 2] == 1 and grid.sum() == 2  # rows 20-24 and columns 30-34: two blocks
    with pytest.raises(QualityError, match="at most 16"):
        to_latent_map(np.arange(64 * 128, dtype=np.float32).reshape(64, 128) / 10000, 128, 64)


@needs_shared
def test_a_region_gets_the_bits_and_the_file_says_so(shipped: Codec) -> None:
    image = np.asarray(Image.open(kodak_path("kodim23.png")).convert("RGB"))[128:256, 256:448]
    mask = _box(128, 192, 32, 64, 64)
    plain = shipped.compress(image, quality=1.0)
    roi = shipped.compress(image, quality_map=roi_quality_map(mask, 1.0, 5.0))
    assert roi.data[4] == 3 and plain.data[4] == 2  # only files with a map are version 3
    assert roi.header.quality_map is not None and roi.header.quality_map.levels == (1.0, 5.0)
    assert roi.header.quality == 1.0  # most blocks are outside the region
    decoded, uniform = shipped.decompress(roi).pixels, shipped.decompress(plain).pixels

    def error(pixels: np.ndarray, where: np.ndarray) -> float:
        return float(np.mean((pixels[where].astype(float) - image[where]) ** 2))

    assert error(decoded, mask) < 0.7 * error(uniform, mask)  # the region is coded far better
    assert error(decoded, ~mask) < 1.25 * error(uniform, ~mask)  # the rest about as before
    assert len(roi.data) > len(plain.data)


def test_a_map_round_trips_through_the_container_and_is_checked(shipped: Codec) -> None:
    image = random_image(72, 100, seed=4)
    roi = shipped.compress(image, quality_map=roi_quality_map(_box(72, 100, 0, 0, 20), 0.5, 3.0))
    header, payload = bitstream.unpack(roi.data)
    assert header == roi.header and bitstream.pack(header, payload) == roi.data
    assert bitstream.header_size(header) == len(roi.data) - len(payload)
    out_of_range = dataclasses.replace(header.quality_map, levels=(0.5, 9.0))
    with pytest.raises(FormatError, match="quality"):
        shipped.decompress(bitstream.pack(dataclasses.replace(header, quality_map=out_of_range), payload))
    for cut in range(60, 75):  # truncated inside the map section
        with pytest.raises(FormatError):
            bitstream.unpack(roi.data[:cut])


def test_maps_are_refused_where_they_cannot_apply(shipped: Codec) -> None:
    image = random_image(64, 64)
    mask = roi_quality_map(_box(64, 64, 0, 0, 16), 1.0, 3.0)
    with pytest.raises(QualityError, match="single rate"):
        Codec(random_model("tiny")).compress(image, quality_map=mask)
    with pytest.raises(QualityError, match="only one"):
        shipped.compress(image, quality=1.0, quality_map=mask)
    with pytest.raises(QualityError, match="must lie in"):
        shipped.compress(image, quality_map=roi_quality_map(_box(64, 64, 0, 0, 16), 1.0, 7.0))
    with pytest.raises(QualityError, match="is 32x32"):
        shipped.compress(image, quality_map=np.zeros((32, 32), np.float32))
    Codec(random_model(TINY_VR)).compress(image, quality_map=roi_quality_map(mask > 1, 0.0, 2.0))


def test_the_command_line_codes_a_region(tmp_path: Path, capsys) -> None:
    photo, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    Image.fromarray(random_image(96, 128, seed=5)).save(photo)
    Image.fromarray((_box(96, 128, 16, 32, 48) * 255).astype(np.uint8)).save(mask)
    out = tmp_path / "photo.dcae"
    assert (
        main(["compress", str(photo), "-o", str(out), "--quality", "1", "--roi", str(mask), "--roi-quality", "4"]) == 0
    )
    assert bitstream.unpack(out.read_bytes())[0].quality_map.levels == (1.0, 4.0)
    assert main(["decompress", str(out), "-o", str(tmp_path / "back.png")]) == 0
    assert Image.open(tmp_path / "back.png").size == (128, 96)
    assert main(["compress", str(photo), "-o", str(out), "--force", "--roi", str(mask)]) == 1
    assert "--roi-quality" in capsys.readouterr().err
