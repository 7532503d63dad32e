"""Image quality metrics on 8-bit RGB arrays."""

from __future__ import annotations

import math

import numpy as np
import torch
from pytorch_msssim import ms_ssim

# MS-SSIM with five scales and an 11-pixel window needs sides larger than this.
MS_SSIM_MIN_SIDE = 161


def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR in dB over all RGB samples of two uint8 images (inf when identical)."""
    mse = float(np.mean((reference.astype(np.float64) - decoded.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def msssim(reference: np.ndarray, decoded: np.ndarray) -> "float | None":
    """MS-SSIM (RGB, data range 255), or None for images too small for five scales."""
    if min(reference.shape[:2]) < MS_SSIM_MIN_SIDE:
        return None

    def to_tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1)[None]

    return float(ms_ssim(to_tensor(reference), to_tensor(decoded), data_range=255.0))


def msssim_db(value: "float | None") -> "float | None":
    """MS-SSIM in decibels, -10 log10(1 - MS-SSIM)."""
    if value is None:
        return None
    return math.inf if value >= 1 else -10 * math.log10(1 - value)


def image_metrics(reference: np.ndarray, decoded: np.ndarray, num_bytes: int) -> dict[str, "float | None"]:
    """bpp (whole file), PSNR, MS-SSIM and MS-SSIM in dB of one decoded image."""
    height, width = reference.shape[:2]
    similarity = msssim(reference, decoded)
    return {
        "bpp": 8 * num_bytes / (height * width),
        "psnr-rgb": psnr(reference, decoded),
        "ms-ssim-rgb": similarity,
        "ms-ssim-rgb-db": msssim_db(similarity),
    }
