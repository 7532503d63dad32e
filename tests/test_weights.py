"""Weights files: everything is checked before anything large is built."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import TINY_VR, random_model
from safetensors.torch import save_file

from dcae.errors import WeightsError
from dcae.weights import METADATA_KEY, load_weights, read_metadata, save_weights
from dcae.zoo import RELEASES, find_by_digest, resolve_model_path


def _with_metadata(tmp_path: Path, meta, tensors=None) -> Path:
    path = tmp_path / "crafted.safetensors"
    text = meta if isinstance(meta, str) else json.dumps(meta)
    save_file(tensors or {"x": torch.zeros(2)}, str(path), metadata={METADATA_KEY: text})
    return path


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ("[1, 2, 3]", "not a JSON object"),
        ("{not json", "not valid JSON"),
        ({"format": "dcae-weights/1"}, "no model config"),
        ({"format": "dcae-weights/1", "config": "compact"}, "no model config"),
        ({"format": "dcae-weights/1", "config": {"M": "wide"}}, "invalid model config"),
        ({"format": "dcae-weights/1", "config": {"M": 1_000_000, "N": 1_000_000}}, "invalid model config"),
        ({"format": "dcae-weights/1", "config": {"feature_dims": [4096, 4096, 4096], "M": 4000}}, "do not match"),
    ],
)
def test_crafted_metadata_is_refused_before_anything_is_built(tmp_path: Path, meta, message: str) -> None:
    path = _with_metadata(tmp_path, meta)
    with pytest.raises(WeightsError, match=message) as caught:
        load_weights(path)
    assert len(str(caught.value)) < 400  # one readable line, not a list of every tensor


def test_tensors_that_do_not_match_their_config_give_a_short_message(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    save_weights(random_model(TINY_VR), good)
    meta = read_metadata(good)
    meta["config"]["M"] = 32  # every latent-sized tensor now has the wrong shape
    path = _with_metadata(tmp_path, meta, random_model(TINY_VR).state_dict())
    with pytest.raises(WeightsError, match="do not match the model config") as caught:
        load_weights(path)
    assert len(str(caught.value)) < 400
    # each kind of mismatch names its count and a few tensors, and shapes are spelled out
    assert re.search(
        r"\d+ tensors of another shape \([\w.]+: the config needs \(\d+(, \d+)*\), the file has", str(caught.value)
    )


def test_released_models_are_installed_and_match_the_registry() -> None:
    for release in RELEASES.values():
        assert release.available, f"{release.name} must ship with the package"
        assert read_metadata(release.path)["digest"] == release.digest
        assert find_by_digest(bytes.fromhex(release.digest)[:8]) == release
    assert resolve_model_path("default") == RELEASES["compact-mse-v1"].path
