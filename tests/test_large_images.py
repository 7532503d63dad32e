"""Large images in bounded memory: the entropy-parameter networks run on chunks of the latent
grid (dcae.entropy_parameters), the transforms on tiles, pixels stay 8-bit outside the networks.

Nothing here times or measures memory; the guarantees are asserted on values and tensor sizes
(benchmarks/large_images.py measures seconds and resident memory).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from conftest import TINY_VR, random_image, random_model
from torch.utils._python_dispatch import TorchDispatchMode

from dcae.bitstream import PadMode
from dcae.codec import Codec, CodecOptions, load_codec
from dcae.entropy_parameters import EntropyParameterNetworks, context_reach
from dcae.imageio import image_tensor, pad_image, pad_pixels
from dcae.transforms import Transforms


def _photo(height: int, width: int) -> np.ndarray:
    """Smooth structure plus texture, so the entropy model spreads over many scales."""
    rows, cols = np.mgrid[0:height, 0:width]
    base = 128 + 60 * np.sin(rows / 23.0)[..., None] * np.cos(cols[..., None] / 31.0 + np.arange(3))
    noise = np.random.default_rng(7).normal(0, 12, (height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("preset", ["tiny", "compact"])
def test_chunked_networks_equal_the_one_piece_computation(preset: str) -> None:
    """Chunks smaller than the networks' reach, each with its halo, give what the whole grid
    gives: the reach (context_reach, hyper_reach) covers every dependency."""
    torch.manual_seed(0)
    model = random_model(preset).eval()
    whole = EntropyParameterNetworks(model, torch.float64, torch.device("cpu"), chunk=0)
    chunked = EntropyParameterNetworks(model, torch.float64, torch.device("cpu"), chunk=8)
    config = model.config
    assert context_reach(config) > 8 // 2  # halos overlap several chunks
    generator = torch.Generator().manual_seed(1)
    z_hat = torch.round(3 * torch.randn(1, config.N, 9, 7, generator=generator, dtype=torch.float64))
    with torch.inference_mode():
        hyper = whole.hyper_features(z_hat)
        torch.testing.assert_close(chunked.hyper_features(z_hat), hyper, rtol=1e-12, atol=1e-12)
        previous: list[torch.Tensor] = []
        for index in range(config.num_slices):
            expected = whole.slice_context(index, hyper, previous)
            found = chunked.slice_context(index, hyper, previous)
            for a, b in ((found.mean, expected.mean), (found.scale, expected.scale), (found.support, expected.support)):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
            y_hat_slice = torch.round(expected.mean + torch.randn(expected.mean.shape, generator=generator).double())
            refined = whole.refine_slice(index, expected, y_hat_slice)
            torch.testing.assert_close(
                chunked.refine_slice(index, expected, y_hat_slice), refined, rtol=1e-12, atol=1e-12
            )
            previous.append(refined)


def test_the_shipped_model_codes_the_same_file_in_chunks_as_in_one_piece() -> None:
    image = _photo(320, 384)  # 20 x 24 latent positions: 9 chunks of 8
    one_piece = load_codec("default", entropy_chunk=0)
    chunked = load_codec("default", entropy_chunk=8)
    assert chunked.latents.plan((20, 24)).chunks == 9
    a, b = one_piece.compress(image, quality=2.0), chunked.compress(image, quality=2.0)
    assert a.data == b.data  # portable files: float64 arithmetic in any arrangement
    assert np.array_equal(chunked.decompress(a.data).pixels, one_piece.decompress(a.data).pixels)


def test_machine_specific_files_of_large_images_decode_chunked_and_from_one_piece() -> None:
    model = random_model(TINY_VR)
    image = random_image(320, 256)
    one_piece = Codec(model, options=CodecOptions(portable=False, entropy_chunk=0))
    chunked = Codec(model, options=CodecOptions(portable=False, entropy_chunk=4))
    expected = one_piece.decompress(one_piece.compress(image, quality=1.0).data).pixels
    # its own files, and files written in one piece (as every dcae before chunking wrote them)
    for writer in (chunked, one_piece):
        decoded = chunked.decompress(writer.compress(image, quality=1.0).data).pixels
        assert np.abs(decoded.astype(int) - expected.astype(int)).max() <= 1


class _LargestOutput(TorchDispatchMode):
    """Records the largest tensor any operation produces while a network module runs."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = 0
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.inside:
            for tensor in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(tensor, torch.Tensor):
                    self.largest = max(self.largest, tensor.numel())
        return out


def _network_sizes(codec: Codec, image: np.ndarray) -> tuple[int, int]:
    """(most latent positions one network call saw, largest tensor made inside a network) over
    an encode and a decode."""
    height, width = (-(-side // 64) * 4 for side in image.shape[:2])
    networks, _, _ = codec.latents.parameters(True, (height, width))
    recorder = _LargestOutput()
    positions = [0]

    def enter(_module, inputs):
        recorder.inside += 1
        positions[0] = max(positions[0], inputs[0].shape[-2] * inputs[0].shape[-1])

    def leave(_module, _inputs, _output):
        recorder.inside -= 1

    parts = [networks.h_z_s1, networks.h_z_s2, *networks.dt_cross_attention]
    parts += [*networks.cc_mean_transforms, *networks.cc_scale_transforms, *networks.lrp_transforms]
    hooks = [
        hook for part in parts for hook in (part.register_forward_pre_hook(enter), part.register_forward_hook(leave))
    ]
    try:
        with recorder:
            codec.decompress(codec.compress(image, quality=1.0))
    finally:
        for hook in hooks:
            hook.remove()
    return positions[0], recorder.largest


def test_the_entropy_networks_tensor_sizes_grow_with_the_chunk_not_the_image() -> None:
    model = random_model(TINY_VR)
    chunked = Codec(model, options=CodecOptions(entropy_chunk=4))
    reach = context_reach(model.config)
    # both larger than one chunk's crop in every direction, the hyper features' wider one too
    middle = _network_sizes(chunked, random_image(768, 768))  # 48 x 48 latent positions
    large = _network_sizes(chunked, random_image(1024, 896))  # 64 x 56: 1.6 times the area
    assert large == middle
    assert large[0] < 48 * 48 and (4 + 2 * reach) ** 2 < 48 * 48
    one_piece = _network_sizes(Codec(model, options=CodecOptions(entropy_chunk=0)), random_image(1024, 896))
    assert one_piece[0] == 64 * 56 and one_piece[1] > 2 * large[1]


@pytest.mark.parametrize("mode", [PadMode.REPLICATE, PadMode.REFLECT])
@pytest.mark.parametrize("size", [(70, 130), (64, 64), (3, 200)])
def test_pixels_are_padded_like_the_float_images(mode: PadMode, size: tuple[int, int]) -> None:
    pixels = random_image(*size)[None]
    expected = pad_image(image_tensor(pixels), 64, mode)
    assert torch.equal(image_tensor(pad_pixels(pixels, 64, mode)), expected)


def test_analysis_of_8_bit_tiles_equals_the_float_image() -> None:
    codec = Codec(random_model(TINY_VR), options=CodecOptions(tile=128, halo=64))
    pixels = pad_pixels(random_image(300, 200)[None], 64)
    with torch.inference_mode():  # the same values in (a crop's memory layout may change the last bits)
        features = codec.transforms.analyse(pixels)
        torch.testing.assert_close(features, codec.transforms.analyse(image_tensor(pixels)), rtol=0, atol=1e-5)


def _heard(run) -> list[tuple[str, int, int]]:
    """What a progress callback hears during ``run(progress)``, checked to be one count that
    only grows and ends at its total; returns the (stage, done, total) reports."""
    heard: list[tuple[str, int, int]] = []
    run(lambda stage, done, total: heard.append((stage, done, total)))
    assert len({total for _, _, total in heard}) == 1 and heard[-1][1] == heard[-1][2]
    assert [done for _, done, _ in heard] == sorted(done for _, done, _ in heard)
    return heard


def _stages(heard: list[tuple[str, int, int]]) -> list[str]:
    return list(dict.fromkeys(stage for stage, _, _ in heard))


def test_one_progress_count_runs_through_every_stage() -> None:
    codec = Codec(random_model(TINY_VR), options=CodecOptions(tile=128, halo=64, entropy_chunk=4))
    image = random_image(300, 260)
    compressed = codec.compress(image, quality=1.0)
    plain = _heard(lambda progress: codec.compress(image, quality=1.0, progress=progress))
    sized = _heard(lambda progress: codec.compress(image, target_size=3000, progress=progress))
    assert _stages(plain) == _stages(sized) == ["analysis", "entropy coding"]
    decoded = _heard(lambda progress: codec.decompress(compressed, progress=progress))
    assert _stages(decoded) == ["entropy decoding", "synthesis"]
    # machine-specific files of one chunk: the model itself computes (no chunks to report)
    specific = Codec(codec.model, options=CodecOptions(portable=False))
    small = specific.compress(random_image(64, 64), quality=1.0)
    assert _stages(_heard(lambda progress: specific.compress(random_image(64, 64), quality=1.0, progress=progress)))
    assert _stages(_heard(lambda progress: specific.decompress(small, progress=progress)))


def test_an_image_too_large_for_this_memory_is_refused_before_any_work(monkeypatch, tmp_path, capsys) -> None:
    from PIL import Image, ImageFile

    from dcae import memory
    from dcae.cli import main
    from dcae.errors import ResourceError

    codec = Codec(random_model(TINY_VR))
    small = codec.compress(random_image(64, 64), quality=1.0)
    big = tmp_path / "big.png"  # a PNG whose header claims 9000x9000 pixels (never decoded)
    Image.new("RGB", (16, 16)).save(big)
    png = bytearray(big.read_bytes())
    png[16:24] = struct.pack(">II", 9000, 9000)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    big.write_bytes(bytes(png))
    monkeypatch.setattr(memory, "available_bytes", lambda: (1_000_000_000, "available memory"))

    def no_work(*_args, **_kwargs):
        raise AssertionError("work started")

    monkeypatch.setattr(Transforms, "analyse", no_work)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_work)  # not even the pixels are read
    with pytest.raises(ResourceError, match=r"9000x9000 .* needs about [\d.]+ GB more memory"):
        codec.compress(big)
    assert codec.decompress(small).pixels.shape == (64, 64, 3)  # a small file still fits
    monkeypatch.setattr(type(codec.latents), "decode", no_work)
    with pytest.raises(ResourceError, match="the file's image is 9000x9000"):
        codec.decompress(_resized_header(small.data, 9000, 9000))
    assert main(["compress", str(big), "-o", str(tmp_path / "big.dcae")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("dcae: error:") and "\n" not in err and "available memory leaves 1.0 GB" in err


def _resized_header(data: bytes, width: int, height: int) -> bytes:
    """The same file claiming another image size (a crafted header)."""
    import dataclasses

    from dcae import bitstream

    header, payload = bitstream.unpack(data)
    return bitstream.pack(dataclasses.replace(header, width=width, height=height), payload)


def test_an_address_space_limit_is_what_this_process_may_use() -> None:
    import subprocess
    import sys

    script = (
        "import resource; from dcae import memory; "
        "size = 1024 * int(next(l for l in open('/proc/self/status') if l.startswith('VmSize')).split()[1]); "
        "resource.setrlimit(resource.RLIMIT_AS, (size + 300_000_000, resource.RLIM_INFINITY)); "
        "room, why = memory.available_bytes(); print(room, why)"
    )
    room, why = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split(
        " ", 1
    )
    assert "address-space" in why and 250_000_000 < int(room) <= 300_000_000


def test_a_raised_pixel_limit_is_not_undone_by_pillows_own(monkeypatch, tmp_path) -> None:
    """Pillow refuses images above twice its own limit; dcae's limit decides instead (here
    Pillow's is lowered so a small image stands in for a 180-megapixel one)."""
    from PIL import Image

    from dcae.errors import ImageError
    from dcae.imageio import load_image

    path = tmp_path / "large.png"
    Image.fromarray(random_image(64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert load_image(path, max_pixels=None)[0].shape == (64, 64, 3)
    assert load_image(path, max_pixels=5000)[0].shape == (64, 64, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000  # the caller's setting is back
    with pytest.raises(ImageError, match="above the limit of 4,000 pixels"):
        load_image(path, max_pixels=4000)


def test_the_allocator_setting_is_made_for_large_images_only() -> None:
    """A fixed mmap threshold returns large images' freed memory but makes small ones slower."""
    import subprocess
    import sys

    script = (
        "import os; os.environ.pop('MALLOC_MMAP_THRESHOLD_', None); from dcae import memory; "
        "print(memory.return_large_blocks_to_the_system(768 * 512), "
        "memory.return_large_blocks_to_the_system(9000 * 9000))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]
