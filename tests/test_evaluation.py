"""Evaluation: BD-rate on curves with known answers, metrics, and an end-to-end eval run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import random_image
from PIL import Image

from dcae.cli import main
from dcae.evaluation import bd_psnr, bd_rate
from dcae.evaluation.classic import CLASSIC_CODECS
from dcae.metrics import image_metrics, msssim_db

RATES = [0.1, 0.2, 0.4, 0.8, 1.6]
PSNRS = [27.0, 29.5, 32.0, 34.8, 37.9]


@pytest.mark.parametrize("method", ["pchip", "polynomial"])
@pytest.mark.parametrize("factor", [0.9, 0.75, 1.2])
def test_bd_rate_of_a_scaled_curve_is_the_scale(method: str, factor: float) -> None:
    scaled = [r * factor for r in RATES]
    assert bd_rate(RATES, PSNRS, scaled, PSNRS, method) == pytest.approx(100 * (factor - 1), abs=1e-9)
    assert bd_rate(scaled, PSNRS, RATES, PSNRS, method) == pytest.approx(100 * (1 / factor - 1), abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "polynomial"])
def test_bd_psnr_of_a_shifted_curve_is_the_shift(method: str) -> None:
    shifted = [p + 0.7 for p in PSNRS]
    assert bd_psnr(RATES, PSNRS, RATES, shifted, method) == pytest.approx(0.7, abs=1e-9)


def test_bd_rate_on_a_log_linear_curve_matches_the_closed_form() -> None:
    # PSNR = 10 + 6 log2(R): a 1 dB gain is worth a rate factor 2^(-1/6) everywhere.
    rates = [0.125, 0.25, 0.5, 1.0, 2.0]
    anchor = [10 + 6 * math.log2(r) for r in rates]
    better = [q + 1 for q in anchor]
    assert bd_rate(rates, anchor, rates, better) == pytest.approx(100 * (2 ** (-1 / 6) - 1), abs=1e-6)


def test_bd_rate_without_overlap_is_nan() -> None:
    assert math.isnan(bd_rate(RATES, PSNRS, RATES, [p + 20 for p in PSNRS]))
    assert math.isnan(bd_rate(RATES[:1], PSNRS[:1], RATES, PSNRS))


def test_metrics() -> None:
    image = random_image(200, 180)
    same = image_metrics(image, image, 100)
    assert same["psnr-rgb"] == math.inf and same["ms-ssim-rgb"] == pytest.approx(1.0)
    assert same["bpp"] == pytest.approx(800 / 36000)
    assert image_metrics(image[:50, :50], image[:50, :50], 1)["ms-ssim-rgb"] is None
    assert msssim_db(0.99) == pytest.approx(20.0)


@pytest.mark.parametrize("key", sorted(CLASSIC_CODECS))
def test_classic_codecs_round_trip(key: str) -> None:
    codec = CLASSIC_CODECS[key]
    image = random_image(64, 80)
    decoded = codec.decode(codec.encode(image, codec.qualities[len(codec.qualities) // 2]))
    assert decoded.shape == image.shape and decoded.dtype == np.uint8


def test_eval_writes_json_plot_and_report(tmp_path: Path, tiny_weights: Path, capsys) -> None:
    data = tmp_path / "images"
    data.mkdir()
    for i in range(2):
        Image.fromarray(random_image(176, 192, seed=i)).save(data / f"img{i}.png")
    anchors = tmp_path / "anchors"
    anchors.mkdir()
    (anchors / "made-up.json").write_text(json.dumps({"name": "made-up", "results": {"bpp": RATES, "psnr-rgb": PSNRS}}))
    out = tmp_path / "eval"
    argv = ["eval", str(data), "--model", str(tiny_weights), "--codecs", "jpeg,webp", "--anchors", str(anchors)]
    assert main([*argv, "--out", str(out)]) == 0
    assert "BD-rate" in capsys.readouterr().out
    for name in ("dcae", "jpeg-420", "webp"):
        result = json.loads((out / f"{name}.json").read_text())
        points = len(result["results"]["quality"])
        for key in ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"):
            assert len(result["results"][key]) == points
            assert all(v is not None and v > 0 for v in result["results"][key])
        assert sorted(result["per_image"]) == ["img0.png", "img1.png"]
    assert len(json.loads((out / "dcae.json").read_text())["results"]["quality"]) == 3  # tiny model: 3 points
    table = json.loads((out / "bd_table.json").read_text())
    assert {row["anchor"] for row in table} == {"jpeg-420", "webp", "made-up (anchor)"}
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.html").read_text()
    assert "<table>" in report and report.count("data:image/png;base64,") >= 4  # plot + original + 2 codecs
    # an earlier report is replaced only with --force, and the refusal comes before any work
    assert main([*argv, "--out", str(out)]) == 1
    assert "holds an earlier report" in capsys.readouterr().err and (out / "report.html").read_text() == report
    quick = ["eval", str(data), "--model", "none", "--codecs", "jpeg", "--out", str(out), "--force"]
    assert main(quick) == 0 and (out / "report.html").read_text() != report
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_eval_measures_latent_optimisation(tmp_path: Path, capsys) -> None:
    """``--optimize`` reaches every file the run codes, the report's crops included."""
    data = tmp_path / "images"
    data.mkdir()
    Image.fromarray(random_image(64, 128, seed=3)).save(data / "img.png")
    runs = {}
    for steps in (0, 4):
        out = tmp_path / f"eval{steps}"
        argv = ["eval", str(data), "--model", "default", "--codecs", "jpeg", "--qualities", "1", "3"]
        assert main([*argv, "--optimize", str(steps), "--out", str(out)]) == 0
        runs[steps] = json.loads((out / "dcae.json").read_text())
        assert (out / "report.html").exists()
    capsys.readouterr()
    assert "4 steps of latent optimisation" in runs[4]["description"]
    assert "latent optimisation" not in runs[0]["description"]
    assert runs[4]["per_image"]["img.png"]["bpp"] != runs[0]["per_image"]["img.png"]["bpp"]
