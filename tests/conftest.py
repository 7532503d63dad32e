"""Shared fixtures: tiny models, weights files and small images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import dcae
from dcae.weights import save_weights

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
KODAK = SHARED / "datasets" / "kodak"
TRAIN = SHARED / "datasets" / "train"
REFERENCE_TSV = SHARED / "reference" / "dcae_official_state_dict.tsv"

TINY_VR = dcae.PRESETS["tiny"].replace(num_rate_points=3)


def random_model(config="tiny", seed: int = 0) -> dcae.DCAE:
    """A randomly initialised model whose untrained prior is made sensible for coding tests."""
    torch.manual_seed(seed)
    return dcae.build_model(config).eval()


@pytest.fixture
def tiny_model() -> dcae.DCAE:
    """A single-rate model of the tiny preset with seeded random weights."""
    return random_model("tiny")


@pytest.fixture
def tiny_vr_model() -> dcae.DCAE:
    """A variable-rate tiny model (3 rate points) with seeded random weights."""
    return random_model(TINY_VR)


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    """A weights file of a variable-rate tiny model, written into the test's temporary folder."""
    path = tmp_path / "tiny.safetensors"
    save_weights(random_model(TINY_VR), path, {"note": "test"})
    return path


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth-ish random RGB image (uint8), more like a photo than white noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((max(1, height // 8 + 1), max(1, width // 8 + 1), 3))
    ys = np.linspace(0, coarse.shape[0] - 1, height)
    xs = np.linspace(0, coarse.shape[1] - 1, width)
    smooth = coarse[np.round(ys).astype(int)][:, np.round(xs).astype(int)]
    noisy = smooth * 200 + rng.random((height, width, 3)) * 55
    return np.clip(noisy, 0, 255).astype(np.uint8)


needs_shared = pytest.mark.skipif(
    not (KODAK.is_dir() and REFERENCE_TSV.is_file()),
    reason=f"needs the shared data at {SHARED} (Kodak, the reference listing), which this checkout lacks",
)


def kodak_path(name: str) -> Path:
    """A Kodak image; tests that use one carry the ``needs_shared`` mark."""
    return KODAK / name
