"""Cached latents: fixed training crops with their analysis-transform output, computed once.

Training one part of the model alone (the synthesis transform, or the entropy model) leaves the
analysis transform frozen, so its output for a crop never changes: the crops are drawn once
(``crops_per_image`` per photo, each through :class:`RandomCropDataset`'s downscale and flips),
analysed once, and every step reads them back instead of running and differentiating the
analysis. The cache is one safetensors file in the run folder, tied to what made it (the
analysis weights' digest, the photos and the crop recipe: :func:`cache_key`), so a run never
trains on another model's latents or on crops of another size.

Storage: the crops as 8-bit pixels (what a photo holds) and the features in float16 (the
training runs in bf16 autocast, whose mantissa is coarser): about 280 kB per 256x256 crop of
the compact model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..files import atomic_write
from ..model import DCAE
from .data import RandomCropDataset

# Seeds of the cached crops are far from those of the random-crop stream (ResumableSampler).
_CROP_SEED_BASE = 7_000_000_019


def analysis_digest(model: DCAE) -> str:
    """A fingerprint of the analysis transform's weights (what the cached features depend on)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.g_a.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def cache_key(
    model: DCAE,
    photos: Sequence[Path],
    patch: int,
    downscale: tuple[float, float],
    crops_per_image: int,
    seed: int,
    crop_candidates: int = 1,
    crop_lean: str = "edges",
) -> str:
    """What a cache's contents depend on, as one fingerprint: the analysis weights, the photos
    (their paths, in order) and the crop recipe."""
    recipe = {
        "analysis": analysis_digest(model),
        "photos": [str(path) for path in photos],
        "patch": patch,
        "downscale": [float(v) for v in downscale],
        "crops_per_image": crops_per_image,
        "seed": seed,
    }
    if crop_candidates > 1:  # uniform crops keep the keys they had before edge-leaning crops existed
        recipe["crop_candidates"] = crop_candidates
        if crop_lean != "edges":  # likewise for the first lean
            recipe["crop_lean"] = crop_lean
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:32]


class CachedLatents(Dataset):
    """Fixed crops and their analysis features, addressed like :class:`RandomCropDataset`
    (``(index, seed)``; the seed is ignored: a cached crop is always the same)."""

    def __init__(self, crops: torch.Tensor, features: torch.Tensor) -> None:
        if crops.dtype != torch.uint8 or crops.dim() != 4 or features.dim() != 4 or len(crops) != len(features):
            raise ValueError("crops must be (N, 3, H, W) uint8 and features (N, C, h, w), one per crop")
        self.crops = crops
        self.features = features

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, item: "tuple[int, int] | int") -> tuple[torch.Tensor, torch.Tensor]:
        index = item[0] if isinstance(item, tuple) else item
        return self.crops[index].float().div_(255.0), self.features[index]


@torch.inference_mode()
def build_latent_cache(
    model: DCAE, dataset: RandomCropDataset, crops_per_image: int, seed: int, batch: int = 16
) -> CachedLatents:
    """Draw ``crops_per_image`` crops of every photo of ``dataset`` and analyse them with
    ``model``'s analysis transform (float32, on the CPU, the model left as it was)."""
    was_training = model.training
    model.eval()
    try:
        items = [
            (index, _CROP_SEED_BASE + seed * 1_000_003 + index * crops_per_image + k)
            for index in range(len(dataset))
            for k in range(crops_per_image)
        ]
        crops, features = [], []
        for start in range(0, len(items), batch):
            pixels = torch.stack([dataset[item] for item in items[start : start + batch]])
            features.append(model.g_a(pixels.to(next(model.parameters()).device)).to("cpu", torch.float16))
            crops.append(pixels.mul(255.0).round_().to(torch.uint8))
    finally:
        model.train(was_training)
    return CachedLatents(torch.cat(crops), torch.cat(features))


def save_latent_cache(cache: CachedLatents, path: Path, key: str) -> None:
    """Write ``cache`` to ``path`` (atomically), tied to its :func:`cache_key`."""
    tensors = {"crops": cache.crops.contiguous(), "features": cache.features.contiguous()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"cache_key": key}))


def read_cache_key(path: Path) -> "str | None":
    """The :func:`cache_key` a cache file was written with ("" for a file without one); None
    when there is no file. A file that is not a safetensors file is one :class:`ConfigError`."""
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("cache_key", "")
    except (SafetensorError, OSError) as error:
        raise ConfigError(f"{path} is not a readable latent cache ({error}); remove it to rebuild it") from None


def load_latent_cache(path: Path) -> CachedLatents:
    """The cache at ``path`` (check its :func:`read_cache_key` first); a damaged file is one
    :class:`ConfigError`."""
    try:
        tensors = load_file(str(path))
        return CachedLatents(tensors["crops"], tensors["features"])
    except (SafetensorError, OSError, KeyError, ValueError) as error:
        raise ConfigError(f"{path} is not a readable latent cache ({error}); remove it to rebuild it") from None
