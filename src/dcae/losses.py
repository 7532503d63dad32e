"""Rate-distortion objectives."""

from __future__ import annotations

import math
from typing import Any

import torch
from pytorch_msssim import ms_ssim


class RateDistortionLoss(torch.nn.Module):
    """``lambda * 255^2 * MSE + bpp`` (distortion ``"mse"``) or ``lambda * (1 - MS-SSIM) + bpp``.

    ``lmbda`` may be a float or a (B,) tensor, one value per image, for variable-rate training.
    """

    def __init__(self, lmbda: float = 0.0130, distortion: str = "mse") -> None:
        super().__init__()
        if distortion not in ("mse", "ms-ssim"):
            raise ValueError(f"distortion must be 'mse' or 'ms-ssim', got {distortion!r}")
        self.lmbda = lmbda
        self.distortion = distortion

    def forward(
        self, output: dict[str, Any], target: torch.Tensor, lmbda: "float | torch.Tensor | None" = None
    ) -> dict[str, torch.Tensor]:
        """Return ``{"loss", "bpp", "mse", "psnr"}`` (and ``"ms_ssim"`` for that distortion), batch means."""
        lam = torch.as_tensor(self.lmbda if lmbda is None else lmbda, dtype=torch.float32, device=target.device)
        pixels = target.shape[2] * target.shape[3]
        # One reduction per latent for the whole batch (not one per image): fewer device kernels.
        bits_per_image = sum(
            torch.log(lik.float()).flatten(1).sum(dim=1) for lik in output["likelihoods"].values()
        ) / -math.log(2)
        bpp_per_image = bits_per_image / pixels
        x_hat = output["x_hat"].float()
        mse_per_image = ((x_hat - target.float()) ** 2).flatten(1).mean(dim=1)
        result = {"bpp": bpp_per_image.mean(), "mse": mse_per_image.mean()}
        result["psnr"] = (10 * torch.log10(1.0 / mse_per_image.detach().clamp_min(1e-10))).mean()
        if self.distortion == "mse":
            distortion = 255.0**2 * mse_per_image
        else:
            similarity = ms_ssim(x_hat.clamp(0, 1), target.float(), data_range=1.0, size_average=False)
            result["ms_ssim"] = similarity.mean()
            distortion = 1.0 - similarity
        result["loss"] = (lam * distortion + bpp_per_image).mean()
        return result
