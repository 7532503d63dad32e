"""Training one part of the model alone on cached latents (``--train-parts``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from conftest import random_image
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from dcae import PRESETS
from dcae.model import DCAE
from dcae.training import ConfigError, RandomCropDataset, Trainer, load_train_config
from dcae.training import trainer as trainer_module
from dcae.training.data import split_holdout
from dcae.training.latent_cache import analysis_digest, build_latent_cache, cache_key
from dcae.weights import load_weights


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i in range(4):
        Image.fromarray(random_image(96 + 16 * i, 112, seed=20 + i)).save(folder / f"p{i}.png")
    return folder


@pytest.fixture(scope="module")
def start_weights(photos: Path, tmp_path_factory) -> Path:
    """A variable-rate tiny model after two whole-model steps (the starting point of the parts)."""
    out = tmp_path_factory.mktemp("start") / "run"
    Trainer(_config(photos, out, steps=2)).run()
    return out / "latest.safetensors"


def _config(folder: Path, out: Path, **changes):
    values = dict(
        model={**PRESETS["tiny"].to_dict(), "num_rate_points": 2},
        lambdas=[0.005, 0.02],
        lambda_sampling="image",
        train_data=str(folder),
        patch=64,
        batch_size=2,
        workers=0,
        steps=4,
        lr=1e-3,
        out=str(out),
        log_every=1,
        seed=5,
        val_data=str(folder),
        val_images=1,
        val_every=1000,
        cache_crops=2,
    )
    values.update(changes)
    return load_train_config(None, values)


def _changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if not torch.equal(before[name], after[name])}


@pytest.mark.parametrize("part", ["synthesis", "entropy"])
def test_a_part_alone_changes_only_its_own_weights(photos: Path, start_weights: Path, tmp_path: Path, part) -> None:
    run = tmp_path / part
    Trainer(_config(photos, run, init_from=str(start_weights), train_parts=part)).run()
    before, after = load_file(start_weights), load_file(run / "latest.safetensors")
    changed = _changed(before, after)
    owned = {name for name in before if any(name == n or name.startswith(n + ".") for n in DCAE.TRAINABLE_PARTS[part])}
    assert changed, "the part did not learn"
    assert changed <= owned, f"weights outside {part} changed: {sorted(changed - owned)}"
    assert not any(name.startswith("g_a.") for name in changed)
    if part == "synthesis":
        assert any(name.startswith("g_s.") for name in changed)
        assert "entropy_bottleneck.quantiles" not in changed  # the prior's quantiles stay with the entropy model
    else:
        assert any(name.startswith("cc_mean_transforms.") for name in changed)
        assert "entropy_bottleneck.quantiles" in changed


def test_the_cache_holds_what_the_analysis_computes(photos: Path, start_weights: Path) -> None:
    """Cached features are the analysis of the cached crops (to float16's precision), and the
    same crops come back for the same seed."""
    model, _ = load_weights(start_weights)
    dataset = RandomCropDataset(photos, 64, (0.6, 1.0))
    cache = build_latent_cache(model, dataset, crops_per_image=2, seed=5)
    assert len(cache) == 2 * len(dataset)
    crop, features = cache[(3, 12345)]
    with torch.no_grad():
        expected = model.eval().g_a(crop[None])[0]
    assert features.dtype == torch.float16 and features.shape == expected.shape
    torch.testing.assert_close(features.float(), expected, rtol=2e-3, atol=2e-3)
    again = build_latent_cache(model, dataset, crops_per_image=2, seed=5)
    assert torch.equal(again.crops, cache.crops)
    assert not torch.equal(build_latent_cache(model, dataset, crops_per_image=2, seed=6).crops, cache.crops)


def test_a_whole_model_step_on_cached_features_equals_one_on_pixels(start_weights: Path) -> None:
    model, _ = load_weights(start_weights)
    model.eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = model(x, quality=torch.tensor([0.0, 1.0]))
        cached = model(x, quality=torch.tensor([0.0, 1.0]), features=model.g_a(x))
    torch.testing.assert_close(cached["x_hat"], plain["x_hat"], rtol=0, atol=0)


def test_the_cache_is_reused_by_a_resume_without_decoding_the_photos(
    photos: Path, start_weights: Path, tmp_path: Path, monkeypatch
) -> None:
    run = tmp_path / "run"
    Trainer(_config(photos, run, init_from=str(start_weights), train_parts="synthesis", steps=2)).run()
    cache = run / "latent-cache.safetensors"
    made = cache.stat().st_mtime_ns

    def no_photos(*args, **kwargs):
        raise AssertionError("the photos were decoded although the cache holds their crops")

    monkeypatch.setattr(trainer_module, "RandomCropDataset", no_photos)
    Trainer(_config(photos, run, train_parts="synthesis", steps=4), resume=True).run()
    assert cache.stat().st_mtime_ns == made  # read back, not rebuilt


def test_the_run_folders_cache_is_rebuilt_for_other_weights_or_crops(
    photos: Path, start_weights: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    Trainer(_config(photos, run, init_from=str(start_weights), train_parts="entropy", steps=1)).run()
    cache = run / "latent-cache.safetensors"
    assert len(load_file(str(cache))["crops"]) == 4 * 2
    # The same weights with more crops per photo replace the run: the cache follows the new crops.
    Trainer(_config(photos, run, init_from=str(start_weights), train_parts="entropy", cache_crops=3), replace=True)
    assert len(load_file(str(cache))["crops"]) == 4 * 3
    # Other analysis weights (a fresh tiny model): their own latents.
    fresh = Trainer(_config(photos, run, train_parts="entropy", cache_crops=3), replace=True)
    key = cache_key(fresh.model, split_holdout(photos, 0)[0], 64, tuple(fresh.cfg.downscale), 3, 5)
    with safe_open(str(cache), framework="pt") as handle:
        assert handle.metadata()["cache_key"] == key
    assert analysis_digest(fresh.model) != analysis_digest(load_weights(start_weights)[0])
    # The crop recipe is in the key: leaning crops differ by what they lean to; uniform ones do not.
    files = split_holdout(photos, 0)[0]
    recipes = [(1, "edges"), (1, "contours"), (4, "edges"), (4, "contours")]
    keys = [cache_key(fresh.model, files, 64, (1.0, 1.0), 3, 5, n, lean) for n, lean in recipes]
    assert keys[0] == keys[1] and len({keys[0], keys[2], keys[3]}) == 3


def test_a_named_cache_of_other_weights_is_refused_and_kept(photos: Path, start_weights: Path, tmp_path: Path) -> None:
    named = tmp_path / "shared-cache.safetensors"
    config = _config(
        photos, tmp_path / "a", init_from=str(start_weights), train_parts="synthesis", steps=1, latent_cache=str(named)
    )
    Trainer(config).run()
    kept = named.read_bytes()
    # A fresh model's run pointed at the first run's cache: that file is not its to replace.
    with pytest.raises(ConfigError, match="other analysis weights, photos or crops"):
        Trainer(_config(photos, tmp_path / "b", train_parts="synthesis", latent_cache=str(named)))
    assert named.read_bytes() == kept


def test_a_damaged_cache_is_one_clear_error(photos: Path, start_weights: Path, tmp_path: Path) -> None:
    bad = tmp_path / "cache.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ConfigError, match="not a readable latent cache"):
        Trainer(
            _config(
                photos, tmp_path / "run", init_from=str(start_weights), train_parts="entropy", latent_cache=str(bad)
            )
        )
    assert bad.read_bytes() == b"not a safetensors file at all"  # the user's file is left as it was


def test_resuming_with_another_part_is_refused(photos: Path, start_weights: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    Trainer(_config(photos, run, init_from=str(start_weights), train_parts="synthesis", steps=1)).run()
    with pytest.raises(ConfigError, match="train_parts"):
        Trainer(_config(photos, run, train_parts="entropy", steps=2), resume=True)


def test_unknown_parts_are_refused(photos: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train_parts must be one of"):
        _config(photos, tmp_path / "run", train_parts="analysis")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="part must be"):
            DCAE(PRESETS["tiny"]).part_parameters("analysis")
