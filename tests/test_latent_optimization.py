"""Encoder-side latent optimisation: it measures what the codec spends, lowers it, and never
makes a file the stock decoder cannot read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import kodak_path, needs_shared, random_image, random_model
from PIL import Image

from dcae.cli import main
from dcae.codec import Codec, CodecOptions, CompressedImage, QualityError, load_codec
from dcae.imageio import image_tensor, load_image, pad_image
from dcae.latent_optimization import (
    DEFAULT_LEARNING_RATE,
    lambda_for_quality,
    optimize_latents,
    rate_distortion_costs,
)
from dcae.weights import read_metadata
from dcae.zoo import resolve_model_path

pytestmark = needs_shared  # Kodak crops and the shipped model


@pytest.fixture(scope="module")
def codec() -> Codec:
    """The shipped model's codec, loaded once for the module."""
    return load_codec("default")


@pytest.fixture(scope="module")
def lambdas() -> list[float]:
    """The shipped model's training lambdas, from its weights' metadata."""
    return read_metadata(resolve_model_path("default"))["lambdas"]


def _crop(name: str, top: int = 128, left: int = 192) -> np.ndarray:
    array, _ = load_image(kodak_path(name))
    return np.array(array[top : top + 128, left : left + 192])


def _file_cost(compressed: CompressedImage, decoded: np.ndarray, original: np.ndarray, lmbda: float) -> float:
    """What a file really costs in the training objective's units: its bits per pixel (header
    included) plus lambda times its squared error in 8-bit units."""
    mse = float(np.mean((decoded.astype(np.float64) - original) ** 2))
    return compressed.bpp + lmbda * mse


def test_lambda_follows_the_gain_units_geometric_interpolation() -> None:
    assert lambda_for_quality([1.0, 4.0, 16.0], 0.5) == pytest.approx(2.0)
    assert lambda_for_quality([1.0, 4.0, 16.0], 2.0) == pytest.approx(16.0)
    assert lambda_for_quality([0.01], None) == 0.01
    with pytest.raises(ValueError, match="unknown"):
        lambda_for_quality([], 1.0)
    with pytest.raises(ValueError, match="needs a quality"):
        lambda_for_quality([1.0, 2.0], None)


def test_the_exact_cost_is_what_the_codec_spends(codec: Codec, lambdas: list[float]) -> None:
    image = _crop("kodim23.png")
    quality = 2.0
    lmbda = lambda_for_quality(lambdas, quality)
    x = pad_image(image_tensor(image[None]), 64)
    with torch.no_grad():
        y = codec.model.analysis(x, quality)
        _, exact = rate_distortion_costs(codec.model, x, y, codec.model.h_a(y), quality, lmbda, (128, 192))
    compressed = codec.compress(image, quality=quality)
    actual = _file_cost(compressed, codec.decompress(compressed).pixels, image, lmbda)
    header_bpp = 8 * 48 / (128 * 192)
    assert float(exact[0]) == pytest.approx(actual - header_bpp, rel=0.03)


@pytest.mark.parametrize(("name", "quality"), [("kodim23.png", 1.0), ("kodim05.png", 3.5)])
def test_optimised_files_cost_less_and_decode_with_the_stock_decoder(
    codec: Codec, lambdas: list[float], name: str, quality: float
) -> None:
    image = _crop(name)
    lmbda = lambda_for_quality(lambdas, quality)
    optimising = load_codec("default", optimize_steps=12)
    plain_file = codec.compress(image, quality=quality)
    optimised_file = optimising.compress(image, quality=quality)
    assert optimised_file.data != plain_file.data
    assert optimising.compress(image, quality=quality).data == optimised_file.data  # deterministic
    decoded = codec.decompress(optimised_file).pixels  # the plain codec reads it: the decoder is unchanged
    assert np.abs(decoded.astype(int) - optimising.decompress(optimised_file).pixels).max() <= 1
    plain_cost = _file_cost(plain_file, codec.decompress(plain_file).pixels, image, lmbda)
    assert _file_cost(optimised_file, decoded, image, lmbda) < 0.99 * plain_cost


def test_the_search_keeps_the_starting_latents_when_no_step_helps(codec: Codec, lambdas: list[float]) -> None:
    image = _crop("kodim23.png")
    x = pad_image(image_tensor(image[None]), 64)
    lmbda = lambda_for_quality(lambdas, 2.0)
    with torch.no_grad():
        start = codec.model.analysis(x, 2.0)
    for steps, learning_rate in ((0, DEFAULT_LEARNING_RATE), (3, 50.0)):  # a huge step only makes things worse
        found = optimize_latents(codec.model, x, 2.0, lmbda, steps, (128, 192), learning_rate)
        assert found.final_cost == found.initial_cost
        assert torch.equal(found.y, start)
    assert all(p.requires_grad for p in codec.model.main_parameters())  # weights left as found
    found = optimize_latents(codec.model, torch.cat([x, x.flip(-1)]), 2.0, lmbda, 6, (128, 192))
    assert all(f < i for f, i in zip(found.final_cost, found.initial_cost))  # per image


def test_rate_control_with_optimisation_fits_the_target_closer_to_the_image(codec: Codec) -> None:
    image = _crop("kodim05.png")
    target = len(codec.compress(image, quality=2.5).data)

    def error(compressed: CompressedImage) -> float:
        return float(np.mean((codec.decompress(compressed).pixels.astype(np.float64) - image) ** 2))

    optimised = load_codec("default", optimize_steps=12).compress(image, target_size=target)
    assert len(optimised.data) <= target
    assert error(optimised) < error(codec.compress(image, target_size=target))


def test_settings_it_cannot_honour_are_refused(monkeypatch, codec: Codec) -> None:
    with pytest.raises(QualityError, match="training lambda"):
        Codec(random_model("tiny"), options=CodecOptions(optimize_steps=4))
    with pytest.raises(QualityError, match=">= 0"):
        CodecOptions(optimize_steps=-1)
    import dcae.latent_optimization

    monkeypatch.setattr(dcae.latent_optimization, "AUTO_TILE_PIXELS", 64 * 64)
    with pytest.raises(QualityError, match="up to 64x64"):
        load_codec("default", optimize_steps=2).compress(random_image(70, 70), quality=1.0)


def test_cli_optimize_flag(tmp_path: Path, tiny_weights: Path, capsys) -> None:
    source = tmp_path / "photo.png"
    Image.fromarray(random_image(48, 80)).save(source)
    out = tmp_path / "photo.dcae"
    assert main(["compress", str(source), "-o", str(out), "--quality", "2", "--optimize", "3"]) == 0
    assert main(["decompress", str(out), "-o", str(tmp_path / "back.png")]) == 0
    assert Image.open(tmp_path / "back.png").size == (80, 48)
    capsys.readouterr()
    # Weights without training lambdas in their metadata cannot be optimised for: one line, exit 1.
    argv = ["compress", str(source), "-o", str(tmp_path / "x.dcae"), "--model", str(tiny_weights), "--optimize", "2"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "training lambda" in err.strip().splitlines()[-1]
    assert main(["roundtrip", str(source), "--optimize", "-1"]) == 1
    assert "--optimize: must be at least 0" in capsys.readouterr().err


def test_effort_levels_are_named_step_counts(tmp_path: Path, tiny_weights: Path, capsys) -> None:
    from dcae.effort import EFFORT_STEPS

    assert EFFORT_STEPS[0] == 0 and list(EFFORT_STEPS) == sorted(EFFORT_STEPS)
    source = tmp_path / "photo.png"
    Image.fromarray(random_image(48, 80)).save(source)
    plain, effort = tmp_path / "plain.dcae", tmp_path / "effort.dcae"
    assert main(["compress", str(source), "-o", str(plain), "--quality", "2"]) == 0
    assert main(["compress", str(source), "-o", str(effort), "--quality", "2", "--effort", "1"]) == 0
    assert plain.read_bytes() != effort.read_bytes()  # the latents were optimised
    assert main(["compress", str(source), "-o", str(effort), "--force", "--effort", str(len(EFFORT_STEPS))]) == 1
    assert "--effort is 0.." in capsys.readouterr().err
    assert main(["compress", str(source), "--effort", "1", "--optimize", "3"]) == 1
    assert "not allowed with" in capsys.readouterr().err
