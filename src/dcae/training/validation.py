"""Validation during training: real bitstreams for a few held-out images."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..codec import Codec, CodecOptions
from ..files import find_images
from ..imageio import ImageError, load_image, to_uint8
from ..metrics import msssim, psnr
from ..model import DCAE


def load_validation_images(source: "str | Path | Sequence[Path]", limit: int) -> list[torch.Tensor]:
    """The first ``limit`` readable images of a folder (or a list of files) as (1, 3, H, W) floats
    in [0, 1]; unreadable files are skipped with a warning."""
    images = []
    for path in find_images(source) if isinstance(source, (str, Path)) else source:
        if len(images) == limit:
            break
        try:
            array, _ = load_image(path)
        except ImageError as error:
            warnings.warn(f"skipping unreadable image {path}: {error}", stacklevel=2)
            continue
        images.append(torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255).unsqueeze(0))
    return images


@torch.inference_mode()
def measure_rd(model: DCAE, images: list[torch.Tensor], quality: "float | None") -> dict[str, float]:
    """Mean bpp of real ``.dcae`` files (header included), PSNR and MS-SSIM of their decoding."""
    # Machine-specific coding: the same file sizes as portable files, at float32 speed.
    codec = Codec(model, name="validation", options=CodecOptions(portable=False))
    bpps, psnrs, msssims = [], [], []
    for image in images:
        pixels = to_uint8(image)[0]
        compressed = codec.compress(pixels, quality=quality)
        decoded = codec.decompress(compressed.data).pixels
        bpps.append(compressed.bpp)
        psnrs.append(psnr(pixels, decoded))
        similarity = msssim(pixels, decoded)
        if similarity is not None:
            msssims.append(similarity)
    return {
        "bpp": float(np.mean(bpps)),
        "psnr": float(np.mean([min(p, 100.0) for p in psnrs])),
        "ms_ssim": float(np.mean(msssims)) if msssims else math.nan,
    }
