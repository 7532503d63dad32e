"""What bf16 autocast does to a training step's numbers: estimated rate and PSNR, float32 vs bf16.

    python benchmarks/amp_precision.py [--model default] [--images 2] [--crop 256] [--device cpu]

Runs the training forward pass (noise proxy, the same noise for both precisions) on crops of the
first Kodak images and prints, per rate point, the rate from the likelihoods and the PSNR of the
reconstruction in float32 and under bf16 autocast. A GPU run trained under bf16 optimises the
bf16 numbers; if they match float32 closely, bf16 costs nothing in what the model learns.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dcae.losses import RateDistortionLoss
from dcae.training.validation import load_validation_images
from dcae.weights import load_weights
from dcae.zoo import resolve_model_path

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"


def rate_and_psnr(model: torch.nn.Module, x: torch.Tensor, quality: float, bf16: bool) -> tuple[float, float]:
    """Estimated bits per pixel and PSNR (dB) of one noisy forward pass, as training measures them."""
    torch.manual_seed(0)
    with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(x, quality=torch.full((x.shape[0],), quality, device=x.device), rate_proxy="noise")
    metrics = RateDistortionLoss()(out, x)
    return float(metrics["bpp"]), float(metrics["psnr"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="zoo name or weights file")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", type=Path, default=KODAK)
    args = parser.parse_args()
    model, _ = load_weights(resolve_model_path(args.model))
    model = model.to(args.device).train()  # train mode: the noise proxy, as in training
    images = load_validation_images(args.data, args.images)
    x = torch.cat([image[..., : args.crop, : args.crop] for image in images]).to(args.device)
    print(f"model {args.model}, {len(images)} crops of {args.crop}x{args.crop}, {args.device}\n")
    print("| quality | float32 bpp | bf16 bpp | rate change | float32 PSNR (dB) | bf16 PSNR (dB) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for quality in range(model.gain_units.points) if model.variable_rate else [None]:
        q = 0.0 if quality is None else float(quality)
        (r32, p32), (r16, p16) = rate_and_psnr(model, x, q, False), rate_and_psnr(model, x, q, True)
        print(f"| {quality} | {r32:.4f} | {r16:.4f} | {100 * (r16 / r32 - 1):+.2f}% | {p32:.2f} | {p16:.2f} |")


if __name__ == "__main__":
    main()
