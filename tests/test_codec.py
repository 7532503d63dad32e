"""The codec: round trips, batches, colour modes, model identity, rate control, the guarantee.

The guarantee every test asserts (docs/format.md): a file decodes to exactly the latents the
encoder coded; the pixels are those latents through the float32 synthesis, so two decodings
may differ by at most one level in a rare sample (another thread count or batch changes how a
kernel splits its sums), never more.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from conftest import TINY_VR, kodak_path, needs_shared, random_image, random_model
from PIL import Image

from dcae import bitstream
from dcae.bitstream import ColourMode
from dcae.codec import Codec, CodecOptions, CompressedImage, load_codec
from dcae.entropy_parameters import EntropyParameterNetworks
from dcae.errors import FormatError, ImageError, LatentMismatchError, ModelMismatchError, QualityError
from dcae.imageio import image_tensor, load_image, pad_image, to_uint8
from dcae.model import DCAE, SliceContext


def _within_a_level(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def _forward(model: DCAE, images: np.ndarray, quality=None) -> tuple[np.ndarray, torch.Tensor]:
    """Pixels and quantised latents of the model's own (float32) forward pass."""
    x = image_tensor(images)
    height, width = x.shape[-2:]
    with torch.inference_mode():
        out = model.eval()(pad_image(x, model.stride), quality=quality)
    return to_uint8(out["x_hat"][..., :height, :width]), out["params"]["y_hat"]


def _machine_specific(model: DCAE, **options) -> Codec:
    return Codec(model, options=CodecOptions(portable=False, **options))


@pytest.mark.parametrize("size", [(1, 1), (17, 33), (64, 64), (70, 130)])
def test_a_machine_specific_round_trip_is_the_forward_pass(size: tuple[int, int]) -> None:
    model = random_model("tiny")
    codec = _machine_specific(model)
    image = random_image(*size)
    compressed = codec.compress(image)
    assert isinstance(compressed, CompressedImage) and bytes(compressed) == compressed.data
    assert compressed.bpp == 8 * len(compressed.data) / (size[0] * size[1])
    decoded = codec.decompress(compressed)
    expected, _ = _forward(model, image[None])
    assert decoded.pixels.dtype == np.uint8 and decoded.header == compressed.header
    _within_a_level(decoded.pixels, expected[0])


def test_batches_code_the_same_latents_as_the_forward_pass() -> None:
    model = random_model(TINY_VR)
    codec = _machine_specific(model)
    images = np.stack([random_image(40, 72, seed=s) for s in range(3)])
    files = codec.compress_batch(list(images), quality=1.25)
    coded = codec.encode_features(codec.transforms.analyse(pad_image(image_tensor(images), 64)), 1.25)
    expected, y_hat = _forward(model, images, quality=1.25)
    torch.testing.assert_close(coded.y_hat, y_hat, rtol=0, atol=0)
    assert [f.data for f in files] == [bytes(codec.compress(image, quality=1.25)) for image in images]
    for batch, single, want in zip(codec.decompress_batch(files), (codec.decompress(f) for f in files), expected):
        _within_a_level(batch.pixels, want)
        _within_a_level(single.pixels, want)
    assert codec.compress_batch([]) == [] and codec.decompress_batch([]) == []


def test_quality_changes_rate_and_is_recorded() -> None:
    codec = Codec(random_model(TINY_VR))
    image = random_image(64, 64)
    low, high = codec.compress(image, quality=0.0), codec.compress(image, quality=2.0)
    assert low.header.quality == 0.0 and high.header.quality == 2.0 and low.data != high.data
    with pytest.raises(QualityError, match="must lie in"):
        codec.compress(image, quality=3.5)


@pytest.mark.parametrize("quality", ["3", float("nan"), float("inf"), True, [1]])
def test_a_quality_that_is_not_a_number_in_range_is_refused(quality) -> None:
    with pytest.raises(QualityError):
        Codec(random_model(TINY_VR)).compress(random_image(16, 16), quality=quality)


@pytest.mark.parametrize(
    "target", [{"target_bpp": float("inf")}, {"target_bpp": -1.0}, {"target_size": 0}, {"target_size": "1k"}]
)
def test_an_impossible_rate_target_is_refused(target) -> None:
    with pytest.raises(QualityError):
        Codec(random_model(TINY_VR)).compress(random_image(16, 16), **target)


def test_other_weights_are_refused() -> None:
    data = Codec(random_model("tiny", seed=0)).compress(random_image(32, 32)).data
    with pytest.raises(ModelMismatchError, match="other weights"):
        Codec(random_model("tiny", seed=1)).decompress(data)


def test_a_preview_reads_fewer_slices_and_differs_from_the_full_image(trained_model) -> None:
    codec = Codec(trained_model)
    compressed = codec.compress(random_image(64, 96), quality=3.0)
    full = codec.decompress(compressed).pixels
    preview = codec.decompress(compressed, preview_slices=1).pixels
    assert preview.shape == full.shape and np.abs(preview.astype(int) - full).max() > 1
    _within_a_level(codec.decompress(compressed, preview_slices=4).pixels, full)
    for bad in (-1, 5, 1.5):
        with pytest.raises(QualityError, match="preview_slices"):
            codec.decompress(compressed, preview_slices=bad)


def test_colour_modes_come_back() -> None:
    codec = Codec(random_model("tiny"))
    gray = Image.fromarray(random_image(30, 40)[..., 0], "L")
    assert codec.decompress(codec.compress(gray)).to_pil().mode == "L"
    palette = Image.fromarray(random_image(30, 40)).quantize(16)
    assert codec.decompress(codec.compress(palette)).to_pil().mode == "P"
    rgba = Image.fromarray(random_image(30, 40)).convert("RGBA")
    assert codec.decompress(codec.compress(rgba)).to_pil().mode == "RGBA"
    transparent = np.dstack([random_image(8, 8), np.arange(64, dtype=np.uint8).reshape(8, 8)])
    decoded = codec.decompress(codec.compress(transparent))
    assert decoded.to_pil().mode == "RGBA" and np.array_equal(decoded.alpha, transparent[..., 3])


def test_exif_orientation_and_deep_images_warn(tmp_path) -> None:
    import imagecodecs

    codec = Codec(random_model("tiny"))
    image = Image.fromarray(random_image(20, 50))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert codec.decompress(codec.compress(path)).pixels.shape == (50, 20, 3)
    deep = Image.fromarray((np.arange(64 * 64, dtype=np.uint16) * 16).reshape(64, 64))
    with pytest.warns(UserWarning, match="8 bits"):
        assert codec.compress(deep).header.colour_mode == ColourMode.L
    rgb48 = tmp_path / "rgb48.png"  # Pillow reads it as 8-bit RGB without a word
    rgb48.write_bytes(imagecodecs.png_encode((np.random.default_rng(0).random((20, 30, 3)) * 65535).astype(np.uint16)))
    with pytest.warns(UserWarning, match="8 bits"):
        codec.compress(rgb48)


def test_an_animated_image_is_coded_from_its_first_frame_with_a_warning(tmp_path) -> None:
    frames = [Image.fromarray(random_image(24, 24, seed=s)) for s in range(3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match="3 frames; coding the first"):
        Codec(random_model("tiny")).compress(path)


def test_channel_first_arrays_are_named_as_such() -> None:
    codec = Codec(random_model("tiny"))
    with pytest.raises(ImageError, match="channel-first"):
        codec.compress(np.zeros((3, 64, 40), np.uint8))
    with pytest.warns(UserWarning, match="channel-first"):
        codec.compress(np.zeros((3, 64, 3), np.uint8))
    with pytest.warns(UserWarning, match="channel-first"):  # read as a 64x3 RGBA image
        assert codec.compress(np.zeros((3, 64, 4), np.uint8)).header.colour_mode == ColourMode.RGBA


def test_unreadable_inputs_raise_image_errors(tmp_path) -> None:
    codec = Codec(random_model("tiny"))
    with pytest.raises(ImageError, match="not found"):
        codec.compress(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(ImageError, match="cannot read"):
        codec.compress(junk)
    with pytest.raises(ImageError, match="array"):
        codec.compress(np.zeros((4, 4, 2), np.uint8))


def test_the_pixel_limit_holds_for_encoding_and_decoding(tmp_path) -> None:
    model = random_model("tiny")
    limited = Codec(model, options=CodecOptions(max_pixels=1000))
    path = tmp_path / "big.png"
    Image.fromarray(random_image(40, 40)).save(path)
    with pytest.raises(ImageError, match="above the limit of 1,000 pixels"):
        limited.compress(path)
    data = Codec(model).compress(path).data
    with pytest.raises(ImageError, match="above the limit"):
        limited.decompress(data)
    assert Codec(model, options=CodecOptions(max_pixels=None)).decompress(data).pixels.shape == (40, 40, 3)


def test_load_codec_from_weights_file(tiny_weights) -> None:
    codec = load_codec(tiny_weights)
    image = random_image(48, 48)
    assert codec.decompress(codec.compress(image, quality=1)).pixels.shape == (48, 48, 3)
    with pytest.raises(ValueError, match="no model named"):
        load_codec("no-such-model")


def test_a_codec_leaves_the_callers_model_as_it_was() -> None:
    model = random_model("tiny").train()
    codec = load_codec(model)
    codec.decompress(codec.compress(random_image(20, 20)))
    assert model.training and next(model.parameters()).device.type == "cpu"
    with pytest.raises(ValueError, match="move it"):
        load_codec(model, device="meta")


@pytest.mark.slow
def test_decoding_agrees_across_processes_and_thread_counts(tiny_weights, tmp_path) -> None:
    image_path = tmp_path / "image.png"
    Image.fromarray(random_image(96, 160)).save(image_path)
    script = (
        "import sys, torch, numpy as np; from dcae.codec import load_codec; "
        "torch.set_num_threads(int(sys.argv[1])); codec = load_codec(sys.argv[2]); mode = sys.argv[3]; "
        "open(sys.argv[5], 'wb').write(codec.compress(sys.argv[4], quality=1.5).data) if mode == 'enc' else "
        "np.save(sys.argv[5], codec.decompress(open(sys.argv[4], 'rb').read()).pixels)"
    )
    coded = tmp_path / "image.dcae"
    run = lambda *args: subprocess.run([sys.executable, "-c", script, *map(str, args)], check=True)  # noqa: E731
    run(1, tiny_weights, "enc", image_path, coded)
    run(2, tiny_weights, "dec", coded, tmp_path / "two.npy")
    run(1, tiny_weights, "dec", coded, tmp_path / "one.npy")
    # Each decoding passed the latent checksum (the same latents); pixels within a level.
    two, one = np.load(tmp_path / "two.npy"), np.load(tmp_path / "one.npy")
    _within_a_level(two, one)
    _within_a_level(two, load_codec(tiny_weights).decompress(coded.read_bytes()).pixels)


def test_header_size_is_small() -> None:
    compressed = Codec(random_model("tiny")).compress(random_image(16, 16))
    header, payload = bitstream.unpack(compressed.data)
    assert bitstream.header_size(header) == len(compressed.data) - len(payload) == 48


def test_format_errors_name_the_problem() -> None:
    data = Codec(random_model("tiny")).compress(random_image(16, 16)).data
    with pytest.raises(FormatError, match="magic"):
        bitstream.unpack(b"PNG" + data[3:])
    with pytest.raises(FormatError, match="truncated"):
        bitstream.unpack(data[:-10])
    flipped = bytearray(data)
    flipped[-6] ^= 0x10
    with pytest.raises(FormatError, match="CRC32"):
        bitstream.unpack(bytes(flipped))
    huge = bytearray(data)
    huge[8:12] = (100_000).to_bytes(4, "little")
    huge[12:16] = (100_000).to_bytes(4, "little")
    with pytest.raises(FormatError, match="outside the supported range"):
        bitstream.unpack(bytes(huge))
    header, payload = bitstream.unpack(data)
    with pytest.raises(ValueError, match="version 2"):
        bitstream.pack(dataclasses.replace(header, latent_checksum=None, portable=True), payload)
    old = bytearray(bitstream.pack(dataclasses.replace(header, latent_checksum=None, portable=False), payload))
    old[5] |= bitstream.FLAG_PORTABLE  # a flag that version 1 did not have
    old[-4:] = zlib.crc32(bytes(old[:-4])).to_bytes(4, "little")
    with pytest.raises(FormatError, match="unknown flags"):
        bitstream.unpack(bytes(old))
    future = bytearray(data)
    future[4] = 5
    with pytest.raises(FormatError, match="format version 5"):
        bitstream.unpack(bytes(future))
    assert bitstream.model_digest(data) == header.digest


def test_a_header_quality_outside_the_models_range_is_a_format_error() -> None:
    codec = Codec(random_model(TINY_VR))
    header, payload = bitstream.unpack(codec.compress(random_image(16, 16), quality=1.0).data)
    with pytest.raises(FormatError, match="quality"):
        codec.decompress(bitstream.pack(dataclasses.replace(header, quality=9.0), payload))


@needs_shared
def test_payload_is_within_half_a_percent_of_the_ideal_rate(trained_model) -> None:
    """On a Kodak image with the shipped model, coding costs < 0.5% over -sum(log2 p)."""
    codec = Codec(trained_model)
    array, _ = load_image(kodak_path("kodim23.png"))
    for quality in (0.0, 5.0):
        _, payload = bitstream.unpack(codec.compress(array, quality=quality).data)
        with torch.inference_mode():
            out = trained_model(pad_image(image_tensor(array[None]), 64), quality=quality)
        ideal = float(sum(-torch.log2(lik.double()).sum() for lik in out["likelihoods"].values()))
        assert ideal <= 8 * len(payload) < 1.005 * ideal


@needs_shared
def test_tiled_transforms_agree_with_whole_image(trained_model) -> None:
    """Tiles with a halo give the same rate (within 0.5%) and quality (within 0.01 dB)."""
    from dcae.metrics import psnr

    array, _ = load_image(kodak_path("kodim19.png"))
    whole = Codec(trained_model, options=CodecOptions(tile=0))
    tiled = Codec(trained_model, options=CodecOptions(tile=256))
    stages = []
    a = whole.compress(array, quality=4.0)
    b = tiled.compress(array, quality=4.0, progress=lambda stage, done, total: stages.append((stage, done, total)))
    assert abs(len(b.data) / len(a.data) - 1) < 0.005
    assert abs(psnr(array, whole.decompress(a).pixels) - psnr(array, tiled.decompress(b).pixels)) < 0.01
    assert len([stage for stage, _, _ in stages if stage == "analysis"]) == 6  # 768x512 in 256-pixel tiles
    with pytest.raises(ValueError, match="multiple of 64"):
        Codec(trained_model, options=CodecOptions(tile=100))


@needs_shared
def test_rate_control_lands_at_or_just_below_the_target(trained_model) -> None:
    codec = Codec(trained_model)
    array, _ = load_image(kodak_path("kodim05.png"))
    crop = array[:256, :384]
    low, high = len(codec.compress(crop, quality=0.0).data), len(codec.compress(crop, quality=5.0).data)
    for fraction in (0.3, 0.7):
        target = int(low + fraction * (high - low))
        assert 0.97 * target <= len(codec.compress(crop, target_size=target).data) <= target
    bpp_target = 8 * (low + high) / 2 / crop.shape[0] / crop.shape[1]
    assert 0.97 * bpp_target <= codec.compress(crop, target_bpp=bpp_target).bpp <= bpp_target
    assert codec.compress(crop, target_size=10 * high).data == codec.compress(crop, quality=5.0).data
    with pytest.raises(QualityError, match="cannot reach"):
        codec.compress(crop, target_size=low // 2)
    with pytest.raises(QualityError, match="only one"):
        codec.compress(crop, quality=1.0, target_bpp=0.5)
    with pytest.raises(QualityError, match="single rate"):
        Codec(random_model("tiny")).compress(crop, target_size=1000)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_files_written_on_cuda_decode_on_the_cpu(trained_model) -> None:
    """Portable files: the same latents whichever device encodes or decodes (the entropy
    parameters run in float64 on the CPU either way)."""
    cpu = Codec(trained_model)
    gpu = load_codec("default", device="cuda")
    image = random_image(128, 192)
    for writer, reader in ((gpu, cpu), (cpu, gpu)):
        compressed = writer.compress(image, quality=2.0)
        # Each decoding passes the latent checksum; the float32 synthesis differs by device.
        a, b = writer.decompress(compressed).pixels, reader.decompress(compressed).pixels
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_codec_keeps_its_name(tiny_weights) -> None:
    assert load_codec(tiny_weights).name == "tiny.safetensors"
    assert Codec(random_model("tiny"), name="mine").name == "mine"


def _perturb_predictions(monkeypatch, scale_factor: float, relative_noise: float = 0.0) -> None:
    """Make the decoder's entropy parameters (float32 and float64) come out slightly differently,
    as another machine's might."""
    for owner in (DCAE, EntropyParameterNetworks):
        original = owner.slice_context

        def perturbed(self, index, hyper, previous, original=original):
            ctx = original(self, index, hyper, previous)
            generator = torch.Generator().manual_seed(index)
            noise = 1 + relative_noise * torch.randn(ctx.scale.shape, generator=generator, dtype=torch.float64)
            return SliceContext(
                mean=ctx.mean * noise.to(ctx.mean.dtype),
                scale=ctx.scale * scale_factor * noise.to(ctx.scale.dtype),
                support=ctx.support,
            )

        monkeypatch.setattr(owner, "slice_context", perturbed)


@pytest.fixture(scope="module")
def trained_model() -> DCAE:
    """The shipped model (compact-mse-v1), loaded once for the module. Tests of the coding
    decisions use it because random weights predict scales that all fall on the table's lowest
    entry."""
    return load_codec("default").model


def test_a_decoder_that_predicts_differently_raises_instead_of_returning_a_wrong_image(
    monkeypatch, trained_model
) -> None:
    codec = _machine_specific(trained_model)
    compressed = codec.compress(random_image(64, 128), quality=2.0)
    assert compressed.header.latent_checksum is not None and not compressed.header.portable
    _perturb_predictions(monkeypatch, scale_factor=1.05)  # moves most scales to another table entry
    with pytest.raises(LatentMismatchError, match="fail their checksum"):
        codec.decompress(compressed)
    # A preview reads only part of the latents and cannot be checked; it still decodes.
    assert codec.decompress(compressed, preview_slices=1).pixels.shape == (64, 128, 3)


def test_portable_files_survive_float64_rounding_differences(monkeypatch, trained_model) -> None:
    portable, machine_specific = Codec(trained_model), _machine_specific(trained_model)
    image = random_image(64, 128)
    compressed = portable.compress(image, quality=1.0)
    assert compressed.header.portable
    expected = portable.decompress(compressed).pixels
    _within_a_level(machine_specific.decompress(compressed).pixels, expected)  # the decoder follows the file
    # Float64 results that differ in their last bits (1e-12 relative, far more than a changed
    # summation order gives) leave every coded decision as it was: the latents pass their checksum.
    _perturb_predictions(monkeypatch, scale_factor=1.0, relative_noise=1e-12)
    _within_a_level(portable.decompress(compressed).pixels, expected)
    monkeypatch.undo()
    # PyTorch's other CPU convolution (oneDNN off) stands in for another machine.
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    _within_a_level(portable.decompress(compressed).pixels, expected)
    monkeypatch.undo()
    # The same noise at float32's precision breaks a machine-specific file, and the checksum says so.
    specific = machine_specific.compress(image, quality=1.0)
    _perturb_predictions(monkeypatch, scale_factor=1.0, relative_noise=1e-4)
    with pytest.raises(LatentMismatchError):
        machine_specific.decompress(specific)


def test_portable_and_machine_specific_files_code_the_same_latents(trained_model) -> None:
    image = random_image(64, 64)
    portable, specific = Codec(trained_model), _machine_specific(trained_model)
    a, b = portable.compress(image, quality=2.0), specific.compress(image, quality=2.0)
    # Same symbols (in all but freak cases of a scale on a table boundary), so the same sizes.
    assert a.header.latent_checksum == b.header.latent_checksum
    assert abs(len(a.data) - len(b.data)) <= 8
    # The portable latents come from float64 arithmetic: equal to float32's up to its rounding.
    features = portable.transforms.analyse(pad_image(image_tensor(image[None]), 64))
    y_portable, y_specific = (c.encode_features(features, 2.0).y_hat for c in (portable, specific))
    assert not torch.equal(y_portable, y_specific)
    torch.testing.assert_close(y_portable, y_specific, rtol=0, atol=1e-3)
    sized = portable.compress(image, target_size=len(a.data))
    assert sized.header.portable and len(sized.data) <= len(a.data)


def test_version_1_files_without_a_latent_checksum_still_decode() -> None:
    codec = _machine_specific(random_model(TINY_VR))
    data = codec.compress(random_image(48, 80), quality=0.5).data
    header, payload = bitstream.unpack(data)
    old = bitstream.pack(dataclasses.replace(header, latent_checksum=None), payload)
    assert old[4] == 1 and len(old) == len(data) - 4
    assert bitstream.unpack(old)[0].latent_checksum is None
    _within_a_level(codec.decompress(old).pixels, codec.decompress(data).pixels)


def test_portable_files_decode_with_float64_sums_in_another_order(monkeypatch, trained_model) -> None:
    """The cross-machine guarantee, exercised: every float64 convolution of the decoder's entropy
    parameters sums its input channels in two halves (as another BLAS blocking would), which
    moves the predictions in their last bits, and the file still decodes to the same latents."""
    import torch.nn.functional as F

    codec = Codec(trained_model)
    compressed = codec.compress(random_image(96, 128), quality=2.0)
    expected = codec.decompress(compressed).pixels
    plain_conv = F.conv2d

    def conv_in_halves(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        if x.dtype != torch.float64 or groups != 1 or x.shape[1] < 2:
            return plain_conv(x, weight, bias, stride, padding, dilation, groups)
        half = x.shape[1] // 2
        first = plain_conv(x[:, :half], weight[:, :half], bias, stride, padding, dilation)
        return first + plain_conv(x[:, half:], weight[:, half:], None, stride, padding, dilation)

    networks, _, _ = codec.latents.parameters(True, (8, 8))
    z_hat = torch.round(3 * torch.randn(1, trained_model.config.N, 2, 2, generator=torch.Generator().manual_seed(0)))
    with torch.inference_mode():
        before = networks.hyper_features(z_hat.double())
        monkeypatch.setattr(F, "conv2d", conv_in_halves)
        after = networks.hyper_features(z_hat.double())
    assert not torch.equal(before, after)  # the arithmetic really changed ...
    torch.testing.assert_close(before, after, rtol=1e-12, atol=1e-12)  # ... in its last bits
    _within_a_level(codec.decompress(compressed).pixels, expected)  # and the checksum passed


@pytest.mark.parametrize(
    ("first", "environment", "expected"),
    [("dcae.codec", {}, "PASSIVE"), ("dcae.codec", {"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE"), ("torch", {}, "unset")],
)
def test_library_users_get_the_command_lines_openmp_wait_policy(first: str, environment: dict, expected: str) -> None:
    """OpenMP reads it once, when PyTorch loads: importing dcae first sets it, as the CLI has it;
    a user's own setting wins, and after PyTorch has loaded dcae leaves the environment alone."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | environment
    script = f"import os, {first}, dcae.codec; print(os.environ.get('OMP_WAIT_POLICY', 'unset'))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.stdout.strip() == expected, result.stderr
