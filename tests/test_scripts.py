"""The helper scripts: GPU training, its batch choice, the per-image BD-rate and the edge-error analyses."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, random_image
from PIL import Image

from dcae import PRESETS
from dcae.weights import load_weights


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(batch: int, seconds: float, bf16: bool = False) -> dict:
    return {"device": "cuda", "batch": batch, "bf16": bf16, "compile": False, "seconds": seconds}


def test_a_larger_batch_is_chosen_only_for_clearly_more_images_per_second() -> None:
    pick = _load("pick_batch")
    # Launch-bound: 64 images cost little more than 16, so the largest batch wins.
    assert pick.choose_batch([_row(16, 0.10), _row(32, 0.11), _row(64, 0.14)]) == 64
    # Compute-bound: throughput is flat, so the smallest batch keeps the most optimiser steps.
    assert pick.choose_batch([_row(16, 0.10), _row(32, 0.19), _row(64, 0.39)]) == 16
    # 32 gains 25%, 64 only 10% more than 32: stop at 32. bf16 rows are ignored.
    assert pick.choose_batch([_row(64, 0.29), _row(16, 0.10), _row(32, 0.16), _row(64, 0.01, bf16=True)]) == 32
    with pytest.raises(ValueError, match="float32"):
        pick.choose_batch([_row(16, 0.1, bf16=True)])
    assert math.isclose(pick.scaled_lr(64, 16, 1e-4), 2e-4)


def test_pick_batch_command_prints_batch_and_learning_rate(tmp_path) -> None:
    probe = tmp_path / "probe.json"
    probe.write_text(
        '[{"device": "cuda", "batch": 16, "bf16": false, "compile": false, "seconds": 0.1},'
        ' {"device": "cuda", "batch": 32, "bf16": false, "compile": false, "seconds": 0.12}]'
    )
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "pick_batch.py"),
            str(probe),
            "--base-batch",
            "16",
            "--base-lr",
            "1e-4",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["32", "0.000141"]


GPU_SCRIPT = str(REPO / "scripts" / "gpu_train.sh")
CPU_TRAIN_ARGS = "--workers 0 --device cpu --patch 64 --threads 1 --holdout 1"


def _gpu_script_env(tmp_path, **extra: str) -> dict[str, str]:
    """Environment that runs scripts/gpu_train.sh on CPU with tiny images, crops and time limits."""
    data = tmp_path / "data"
    data.mkdir()
    for seed in range(3):
        Image.fromarray(random_image(80, 96, seed=seed)).save(data / f"{seed}.png")
    return {
        **os.environ,
        "PYTHON": sys.executable,
        "OUT": str(tmp_path / "out"),
        "RUN": str(tmp_path / "run"),
        "TRAIN_DATA": str(data),
        "RUN_TESTS": "0",
        "PROBE_DEVICE": "cpu",
        "PROBE_BATCHES": "1 2",
        "PROBE_PATCH": "64",
        "EXTRA_ARGS": CPU_TRAIN_ARGS,
        "TOTAL_SECONDS": "120",
        **extra,
    }


def test_the_gpu_training_script_runs_end_to_end_on_cpu(tmp_path) -> None:
    """scripts/gpu_train.sh as a device call runs it, with CPU-sized settings: probe, batch choice,
    both phases, the weights split for the trip back, then a resumed call."""
    env = _gpu_script_env(tmp_path)
    out, run = tmp_path / "out", tmp_path / "run"
    first = subprocess.run(["bash", GPU_SCRIPT, "0.12", "0.04"], cwd=REPO, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout[-1500:] + first.stderr[-1500:]
    assert "| cpu | 2 |" in (out / "probe.log").read_text()
    batch = int((run / "batch").read_text())
    assert batch in (1, 2) and f"batch {batch}, learning rate" in first.stdout
    phase2 = json.loads((out / "latest.json").read_text())
    assert phase2["step"] > 0 and phase2["train_config"]["batch_size"] == batch
    weights = tmp_path / "latest.safetensors"
    weights.write_bytes(b"".join(p.read_bytes() for p in sorted(out.glob("latest.safetensors.part-*"))))
    assert load_weights(weights)[0].config == PRESETS["compact"]
    resumed = subprocess.run(["bash", GPU_SCRIPT, "resume", "0.03"], cwd=REPO, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout[-1500:] + resumed.stderr[-1500:]
    assert json.loads((out / "latest.json").read_text())["step"] > phase2["step"]


def test_the_gpu_training_script_skips_the_probe_when_given_batch_and_learning_rate(tmp_path) -> None:
    """BATCH_LR sets the batch and the first phase's rate; the second phase runs at a quarter of it."""
    env = _gpu_script_env(tmp_path, BATCH_LR="3 2e-5", EXTRA_ARGS=f"{CPU_TRAIN_ARGS} --log-every 1")
    done = subprocess.run(["bash", GPU_SCRIPT, "0.05", "0.02"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]
    out = tmp_path / "out"
    assert not (out / "probe.log").exists() and "batch 3, learning rate 2e-5" in done.stdout
    assert json.loads((out / "latest.json").read_text())["train_config"]["batch_size"] == 3
    rates = {float(row.split(",")[6]) for row in (out / "log.csv").read_text().splitlines()[1:]}
    assert rates == {2e-5, 5e-6}


def test_per_image_bd_rate_finds_the_image_a_codec_loses_on(tmp_path) -> None:
    """Two images: the test codec matches the anchor on one and needs twice the bits on the
    other (a flat picture with one sharp edge); the table and the traits say so."""
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(random_image(64, 64, seed=1)).save(folder / "busy.png")
    flat = np.full((64, 64, 3), 200, dtype=np.uint8)
    flat[:, 40:] = 20
    Image.fromarray(flat).save(folder / "flat.png")
    rates, quality = [0.1, 0.2, 0.4, 0.8], [28.0, 31.0, 34.0, 37.0]
    anchor = {"per_image": {name: {"bpp": rates, "psnr-rgb": quality} for name in ("busy.png", "flat.png")}}
    test = {
        "per_image": {
            "busy.png": {"bpp": rates, "psnr-rgb": quality},
            "flat.png": {"bpp": [2 * r for r in rates], "psnr-rgb": quality},
        }
    }
    for name, data in (("test.json", test), ("anchor.json", anchor)):
        (tmp_path / name).write_text(json.dumps(data))
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "per_image_bd.py"),
            str(tmp_path / "test.json"),
            str(tmp_path / "anchor.json"),
            "--images",
            str(folder),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0]]
    rows = {cells[0].strip(): dict(zip(header, (c.strip() for c in cells))) for cells in lines[2:]}
    assert rows["busy.png"]["BD-rate"] == "+0.0%" and rows["flat.png"]["BD-rate"] == "+100.0%"
    # Twice the bits at equal PSNR: 3 dB behind at its lowest rate; its highest lies beyond the anchor's.
    assert rows["flat.png"]["dB vs anchor, lowest rate"] == "-3.00" and rows["flat.png"]["dB, highest rate"] == "+nan"
    # One column of 16x16 blocks holds the edge: it is the only one not flat.
    assert rows["flat.png"]["flat blocks"] == "75%" and rows["flat.png"]["edge blocks"] == "25%"
    # Its edge is one straight contour: the two columns of pixels beside it, 2 of 64.
    assert rows["flat.png"]["contour pixels"] == "3.1%"
    assert "better than the anchor on 0" in result.stdout
    traits = _load("per_image_bd").block_traits(folder / "busy.png")
    assert traits[0] < 0.5


def _step_image(size: int = 64) -> np.ndarray:
    """Luma with one vertical step of 160 levels in the middle."""
    plane = np.full((size, size), 40.0)
    plane[:, size // 2 :] = 200.0
    return plane


def test_edge_errors_tells_blur_from_ringing() -> None:
    edges = _load("edge_errors")
    original = _step_image()
    masks = edges.regions(original)
    assert masks["edge"][:, 31:33].all() and masks["edge"].sum() == 2 * 64  # the two pixels of the step
    assert masks["band"][:, 27:31].all() and masks["band"][:, 33:37].all() and masks["band"].sum() == 8 * 64
    # Softened: the step spread over five pixels.
    blurred = original.copy()
    blurred[:, 30:35] = np.linspace(40, 200, 7)[1:-1]
    soft = edges.measure(original, blurred, masks)
    assert soft["blur"] > 0.1 and soft["ringing"] < 1.0 and soft["rest"] > 90
    # Ringing: the step kept, an oscillation of +-12 levels beside it.
    ringing = original.copy()
    ringing[:, 27:31] += 12 * np.array([1, -1, 1, -1])
    rung = edges.measure(original, ringing, masks)
    assert rung["ringing"] > 3.0 and abs(rung["blur"]) < 0.2 and rung["band"] < soft["band"] + 10


def test_edge_errors_picks_the_avif_size_nearest_the_target() -> None:
    edges = _load("edge_errors")
    rgb = random_image(48, 48, seed=3)
    data, quality = edges.avif_near(rgb, 1500)
    avif = edges.CLASSIC_CODECS["avif"]
    for neighbour in (quality - 1, quality + 1):
        if 0 <= neighbour <= 100:
            assert abs(len(data) - 1500) <= abs(len(avif.encode(rgb, neighbour)) - 1500)


def test_crop_psnr_reads_cached_features_as_the_analysis_computes_them() -> None:
    import torch

    from dcae.model import DCAE

    crop_psnr = _load("crop_psnr")
    model = DCAE({**PRESETS["tiny"].to_dict(), "num_rate_points": 2}).eval()
    crops = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features = model.g_a(crops)
    from_pixels = crop_psnr.mean_psnr(model, crops, None, 0.0)
    assert math.isfinite(from_pixels)
    assert crop_psnr.mean_psnr(model, crops, features, 0.0) == pytest.approx(from_pixels, abs=1e-6)
