"""Validation during training: real bitstreams for a few held-out images."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim

from ..model import DCAE
from .data import _load_rgb, find_images


def load_validation_images(source: "str | Path | Sequence[Path]", limit: int) -> list[torch.Tensor]:
    """The first ``limit`` images of a folder (or a list of files) as (1, 3, H, W) floats in [0, 1]."""
    images = []
    for path in find_images(source) if isinstance(source, (str, Path)) else source:
        if len(images) == limit:
            break
        array = _load_rgb(path)  # warns about and skips unreadable files
        if array is not None:
            images.append(torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255).unsqueeze(0))
    return images


@torch.inference_mode()
def measure_rd(model: DCAE, images: list[torch.Tensor], quality: "float | None") -> dict[str, float]:
    """Mean bpp of real ``.dcae`` files (header included), PSNR and MS-SSIM of their decoding."""
    from ..codec import Codec, to_uint8

    codec = Codec(model, name="validation")
    bpps, psnrs, msssims = [], [], []
    for image in images:
        pixels = to_uint8(image)[0]
        data = codec.compress(pixels, quality=quality)
        decoded = torch.from_numpy(codec.decompress(data)).permute(2, 0, 1)[None].float() / 255
        reference = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
        height, width = pixels.shape[:2]
        bpps.append(8 * len(data) / (height * width))
        mse = float(F.mse_loss(decoded, reference))
        psnrs.append(10 * math.log10(1 / max(mse, 1e-10)))
        if min(height, width) > 160:
            msssims.append(float(ms_ssim(decoded, reference, data_range=1.0)))
    return {
        "bpp": float(np.mean(bpps)),
        "psnr": float(np.mean(psnrs)),
        "ms_ssim": float(np.mean(msssims)) if msssims else float("nan"),
    }
