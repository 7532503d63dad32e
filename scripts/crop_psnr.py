"""PSNR of several weights on training crops: the latent cache's own crops, and fresh ones.

    python scripts/crop_psnr.py CACHE WEIGHTS [WEIGHTS ...] [--qualities 2 5] [--crops 96]

Tells a part trained on cached latents that fits its training data worse (an optimiser problem)
from one that fits it better but generalises worse (over-fitting to the fixed crops): each set
of weights decodes ``--crops`` crops spread over the cache (their cached analysis features, as
training saw them) and as many fresh random crops of the training photos (not held back), at
each quality, in float32 with the codec's hard rounding. Prints the mean PSNR per set and crop kind.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dcae.training import RandomCropDataset, split_holdout
from dcae.training.latent_cache import load_latent_cache
from dcae.weights import load_weights

BATCH = 16


def mean_psnr(model, crops: torch.Tensor, features: "torch.Tensor | None", quality: float) -> float:
    """Mean over batches of the PSNR of ``model``'s decoding of ``crops`` (in [0, 1])."""
    values = []
    with torch.no_grad():
        for start in range(0, len(crops), BATCH):
            x = crops[start : start + BATCH]
            f = None if features is None else features[start : start + BATCH].float()
            out = model(x, quality=torch.full((len(x),), quality), features=f)
            values.append(float(-10 * torch.log10((out["x_hat"].clamp(0, 1) - x).pow(2).mean())))
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("weights", type=Path, nargs="+")
    parser.add_argument("--qualities", type=float, nargs="+", default=[2.0, 5.0])
    parser.add_argument("--crops", type=int, default=96)
    parser.add_argument("--train-data", default="../shared/datasets/train")
    parser.add_argument("--holdout", type=int, default=48)
    args = parser.parse_args()
    cache = load_latent_cache(args.cache)
    picked = torch.linspace(0, len(cache) - 1, args.crops).long()
    cached_crops, cached_features = cache.crops[picked].float() / 255, cache.features[picked]
    train, _ = split_holdout(args.train_data, args.holdout)
    photos = RandomCropDataset([train[int(i)] for i in torch.linspace(0, len(train) - 1, args.crops)], 256, (0.6, 1.0))
    fresh = torch.stack([photos[(i, 99_000 + i)] for i in range(len(photos))])
    print("| weights | quality | cached crops (dB) | fresh crops (dB) |")
    print("| --- | --- | --- | --- |")
    for path in args.weights:
        model = load_weights(path)[0].eval()
        for quality in args.qualities:
            seen = mean_psnr(model, cached_crops, cached_features, quality)
            new = mean_psnr(model, fresh, None, quality)
            print(f"| {path} | {quality:g} | {seen:.3f} | {new:.3f} |", flush=True)


if __name__ == "__main__":
    main()
