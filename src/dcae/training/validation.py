"""Validation during training: rate and distortion on a few held-out images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim

from ..model import DCAE
from .data import _load_rgb, find_images


def load_validation_images(folder: "str | Path", limit: int) -> list[torch.Tensor]:
    """The first ``limit`` images of ``folder`` as (1, 3, H, W) float tensors in [0, 1]."""
    images = []
    for path in find_images(folder):
        if len(images) == limit:
            break
        array = _load_rgb(path)  # warns about and skips unreadable files
        if array is not None:
            images.append(torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255).unsqueeze(0))
    return images


def _pad(x: torch.Tensor, stride: int) -> torch.Tensor:
    pad_h, pad_w = -x.shape[-2] % stride, -x.shape[-1] % stride
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


@torch.inference_mode()
def estimate_rd(model: DCAE, images: list[torch.Tensor], quality: "float | None") -> dict[str, float]:
    """Mean bpp (from the likelihoods), PSNR and MS-SSIM with hard rounding, as the codec decodes.

    The bpp here is the ideal code length; the trainer's real-bitstream validation uses
    :mod:`dcae.codec` when it is available.
    """
    device = next(model.parameters()).device
    bpps, psnrs, msssims = [], [], []
    for image in images:
        x = image.to(device)
        out = model(_pad(x, model.stride), quality=quality)
        height, width = x.shape[-2:]
        x_hat = out["x_hat"][..., :height, :width].clamp(0, 1)
        x_hat = torch.round(x_hat * 255) / 255
        bits = sum(-torch.log2(lik.float()).sum() for lik in out["likelihoods"].values())
        bpps.append(float(bits) / (height * width))
        mse = float(F.mse_loss(x_hat, x))
        psnrs.append(10 * math.log10(1 / max(mse, 1e-10)))
        if min(height, width) > 160:
            msssims.append(float(ms_ssim(x_hat, x, data_range=1.0)))
    return {
        "bpp": float(np.mean(bpps)),
        "psnr": float(np.mean(psnrs)),
        "ms_ssim": float(np.mean(msssims)) if msssims else float("nan"),
    }
