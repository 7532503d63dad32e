"""Photos keep their colour profile, metadata and transparency through dcae (format version 4's
side parts), and crafted parts are refused in bounded memory."""

from __future__ import annotations

import dataclasses
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import random_image
from PIL import ExifTags, Image, ImageCms

import dcae.pillow
from dcae import bitstream
from dcae.cli import main
from dcae.codec import Codec, CodecOptions, load_codec
from dcae.errors import FormatError

XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'


def _icc() -> bytes:
    """A real ICC profile (littleCMS's sRGB, as Pillow builds it)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int = 1) -> Image.Exif:
    """EXIF with a camera, a date taken, a GPS position and an orientation."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Canon"
    exif[ExifTags.Base.Model] = "EOS R5"
    exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2024:06:01 12:34:56"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.0)
    return exif


@pytest.fixture
def camera_jpeg(tmp_path: Path) -> Path:
    """A 96x64 JPEG with an sRGB ICC profile, camera EXIF (orientation 1, GPS) and XMP."""
    path = tmp_path / "camera.jpg"
    Image.fromarray(random_image(64, 96)).save(path, quality=95, icc_profile=_icc(), exif=_exif(), xmp=XMP)
    return path


def _tags(image: Image.Image) -> dict:
    exif = image.getexif()
    return {
        "make": exif.get(ExifTags.Base.Make),
        "model": exif.get(ExifTags.Base.Model),
        "taken": exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal),
        "latitude": exif.get_ifd(ExifTags.IFD.GPSInfo).get(ExifTags.GPS.GPSLatitude),
    }


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tiff"])
def test_profile_and_metadata_survive_into_every_output_format(camera_jpeg, tmp_path, suffix) -> None:
    coded = tmp_path / "camera.dcae"
    assert main(["compress", str(camera_jpeg), "-o", str(coded)]) == 0
    out = tmp_path / f"out{suffix}"
    assert main(["decompress", str(coded), "-o", str(out)]) == 0
    with Image.open(camera_jpeg) as source, Image.open(out) as decoded:
        assert decoded.info["icc_profile"] == source.info["icc_profile"]  # byte for byte
        assert (
            _tags(decoded)
            == _tags(source)
            == {
                "make": "Canon",
                "model": "EOS R5",
                "taken": "2024:06:01 12:34:56",
                "latitude": (48.0, 51.0, 29.0),
            }
        )
        assert decoded.info["xmp"] == XMP


def test_strip_leaves_out_exif_and_xmp_but_keeps_the_colour_profile(camera_jpeg, tmp_path, capsys) -> None:
    coded = tmp_path / "private.dcae"
    assert main(["compress", str(camera_jpeg), "-o", str(coded), "--strip"]) == 0
    decoded = load_codec("default").decompress(coded.read_bytes())
    with Image.open(camera_jpeg) as source:
        assert decoded.icc_profile == source.info["icc_profile"] and decoded.exif is None and decoded.xmp is None
    capsys.readouterr()
    assert main(["info", str(coded)]) == 0
    listed = capsys.readouterr().out
    assert "sRGB" in listed and "exif              None" in listed


def test_info_lists_what_a_file_carries(camera_jpeg, tmp_path, capsys) -> None:
    coded = tmp_path / "camera.dcae"
    assert main(["compress", str(camera_jpeg), "-o", str(coded)]) == 0
    capsys.readouterr()
    assert main(["info", str(coded), "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    assert info["format_version"] == 4 and info["icc_profile"]["description"] == "sRGB built-in"
    assert info["exif"]["camera"] == "Canon EOS R5" and info["exif"]["taken"] == "2024:06:01 12:34:56"
    assert info["exif"]["location"] is True and info["xmp"]["bytes"] == len(XMP) and info["alpha"] is None


def test_the_orientation_is_applied_once(tmp_path) -> None:
    path = tmp_path / "rotated.jpg"
    Image.fromarray(random_image(40, 100)).save(path, exif=_exif(orientation=6))
    decoded = load_codec("default").decompress(load_codec("default").compress(path).data)
    assert decoded.pixels.shape == (100, 40, 3)  # turned upright
    assert decoded.to_pil().getexif()[ExifTags.Base.Orientation] == 1  # so viewers do not turn it again


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_images_come_back_with_exactly_their_alpha(mode: str, tmp_path) -> None:
    rgb = Image.fromarray(random_image(48, 64))
    alpha = np.zeros((48, 64), np.uint8)
    alpha[8:40, 10:50] = 255
    alpha[20:28, :] = np.arange(64, dtype=np.uint8) * 4  # soft edges too
    if mode == "P":  # a palette with one transparent entry
        source = rgb.quantize(16)
        pixels = np.asarray(source).copy()
        pixels[alpha == 0] = 15
        source = Image.fromarray(pixels, "P")
        source.putpalette(rgb.quantize(16).getpalette())
        source.info["transparency"] = 15
        expected = np.asarray(source.convert("RGBA"))[..., 3]
    else:
        source = rgb.convert(mode)
        source.putalpha(Image.fromarray(alpha))
        expected = alpha
    path = tmp_path / "cutout.png"
    source.save(path)
    codec = load_codec("default")
    compressed = codec.compress(path, quality=2.0)
    decoded = codec.decompress(compressed.data)
    assert np.array_equal(decoded.alpha, expected)
    assert decoded.to_pil().mode == ("LA" if mode == "LA" else "RGBA")
    out = tmp_path / "cutout-decoded.png"
    (tmp_path / "cutout.dcae").write_bytes(compressed.data)
    assert main(["decompress", str(tmp_path / "cutout.dcae"), "-o", str(out)]) == 0
    with Image.open(out) as written:
        assert np.array_equal(np.asarray(written.convert("RGBA"))[..., 3], expected)


def test_the_pillow_plugin_carries_profile_metadata_and_alpha(tmp_path) -> None:
    dcae.pillow.register()
    rgba = Image.fromarray(random_image(40, 56)).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.arange(56, dtype=np.uint8) * 4, (40, 1))))
    path, icc = tmp_path / "plugin.dcae", _icc()
    rgba.save(path, quality=2, icc_profile=icc, exif=_exif(), xmp=XMP)
    with Image.open(path) as opened:
        assert opened.mode == "RGBA" and opened.info["icc_profile"] == icc and opened.info["xmp"] == XMP
        assert _tags(opened)["model"] == "EOS R5"
        opened.load()
        assert np.array_equal(np.asarray(opened)[..., 3], np.asarray(rgba)[..., 3])


def test_a_folder_keeps_each_photos_own_metadata(tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, model in (("a", "first"), ("b", "second")):
        exif = _exif()
        exif[ExifTags.Base.Model] = model
        Image.fromarray(random_image(32, 48)).save(folder / f"{name}.jpg", exif=exif)
    assert main(["compress", str(folder / "a.jpg"), str(folder / "b.jpg"), "-o", f"{tmp_path / 'out'}/"]) == 0
    codec = load_codec("default")
    models = [_tags(codec.decompress((tmp_path / "out" / f"{n}.dcae").read_bytes()).to_pil())["model"] for n in "ab"]
    assert models == ["first", "second"]


def _with_parts(data: bytes, parts: bytes) -> bytes:
    """``data`` (a version 2 file) rewritten as version 4 with ``parts`` as its side-parts
    section, by the layout in docs/format.md: the section goes just before the payload length,
    flag bit 3 is set, and the CRC is recomputed."""
    header, payload = bitstream.unpack(data)
    before_length = len(data) - 4 - len(payload) - 4
    body = bytearray(data[:before_length] + parts + data[before_length:-4])
    body[4], body[5] = 4, body[5] | bitstream.FLAG_SIDE_PARTS
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


def test_crafted_side_parts_are_refused_in_bounded_memory(tmp_path, capsys) -> None:
    data = Codec(load_codec("default").model, options=CodecOptions()).compress(random_image(64, 64), quality=1).data
    bomb = zlib.compress(bytes(64 << 20), 9)  # 64 MB of zeros in 64 kB
    huge = bitstream.MAX_METADATA_BYTES + 1
    cases = {
        "declares more than the limit": b"\x01" + struct.pack("<4sBII", b"EXIF", 1, huge, 4) + b"abcd",
        "inflates beyond what it declares": b"\x01" + struct.pack("<4sBII", b"EXIF", 1, 1000, len(bomb)) + bomb,
        "an unknown part": b"\x01" + struct.pack("<4sBII", b"GIF!", 1, 4, 4) + b"abcd",
        "a part of a future version": b"\x01" + struct.pack("<4sBII", b"EXIF", 9, 4, 4) + b"abcd",
        "lengths beyond the file": b"\x01" + struct.pack("<4sBII", b"XMP_", 1, 4, 1 << 30) + b"abcd",
    }
    for why, parts in cases.items():
        crafted = _with_parts(data, parts)
        tracemalloc.start()
        with pytest.raises(FormatError):
            bitstream.unpack(crafted)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 4 << 20, why  # never near the bomb's 64 MB
        path = tmp_path / "crafted.dcae"
        path.write_bytes(crafted)
        assert main(["info", str(path)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("dcae: error:") and "\n" not in err, why


def test_an_alpha_plane_of_another_size_is_refused_before_it_is_decoded() -> None:
    codec = load_codec("default")
    rgba = np.dstack([random_image(32, 32), np.full((32, 32), 7, np.uint8)])
    compressed = codec.compress(rgba, quality=1)
    big = bitstream.SideParts(alpha_image=_png_of_size(4096, 4096))
    forged = bitstream.pack(
        dataclasses.replace(compressed.header, side_parts=big), bitstream.unpack(compressed.data)[1]
    )
    tracemalloc.start()
    with pytest.raises(FormatError, match="alpha plane is L"):
        codec.decompress(forged)
    assert tracemalloc.get_traced_memory()[1] < 8 << 20  # the 16 MB plane was never built
    tracemalloc.stop()


def _png_of_size(width: int, height: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_the_decoded_pil_image_saves_its_profile_and_metadata(camera_jpeg, tmp_path, suffix) -> None:
    codec = load_codec("default")
    image = codec.decompress(codec.compress(camera_jpeg).data).to_pil()
    out = tmp_path / f"saved{suffix}"
    image.save(out)  # no options: the image carries them
    with Image.open(camera_jpeg) as source, Image.open(out) as saved:
        assert saved.info["icc_profile"] == source.info["icc_profile"] and saved.info["xmp"] == XMP
        assert _tags(saved) == _tags(source)
