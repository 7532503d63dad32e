"""Is a model limited by its bits or by its transforms? Coded quality against the transform ceiling.

    python benchmarks/transform_ceiling.py [--model default] [--images 6] [--qualities 0 1 2 3 4 5]
        [--optimise-steps N]

For each quality the table gives the real file's bpp and PSNR, and the PSNR of the same analysis
and synthesis transforms with the latent left unquantised (no rounding, no entropy model): the
ceiling that no amount of bits can pass. Where the coded PSNR is close to the ceiling, more rate
buys little and only better transforms (training, capacity) raise the curve.

With ``--optimise-steps N`` a last column gives the synthesis alone its best chance: the latent
is fitted to the image by N Adam steps on the MSE, starting from the analysis output. A large
gain over the unquantised column means the analysis transform is the weaker half; a small one,
the synthesis.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dcae.codec import load_codec
from dcae.imageio import image_tensor, load_image, pad_image, to_uint8
from dcae.metrics import psnr

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"


def padded_tensor(model, image: np.ndarray, pad_mode) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H', W') floats in [0, 1], padded to the model stride as the codec does."""
    return pad_image(image_tensor(image[None]), model.stride, pad_mode)


def as_decoded(x_hat: torch.Tensor, image: np.ndarray) -> np.ndarray:
    """Crop the padding and round to 8 bits, like a decode."""
    return to_uint8(x_hat[..., : image.shape[0], : image.shape[1]])[0]


def unquantised_reconstruction(model, image: np.ndarray, quality, pad_mode) -> np.ndarray:
    """Synthesis of the unrounded (gained) latent."""
    with torch.inference_mode():
        padded = padded_tensor(model, image, pad_mode)
        return as_decoded(model.synthesis(model.analysis(padded, quality), quality), image)


def fitted_latent_reconstruction(model, image: np.ndarray, quality, pad_mode, steps: int) -> np.ndarray:
    """Synthesis of a latent fitted to the image by gradient descent (the synthesis's own ceiling).
    The model's parameters must not require gradients."""
    padded = padded_tensor(model, image, pad_mode)
    with torch.no_grad():
        latent = model.analysis(padded, quality)
    latent.requires_grad_(True)
    optimiser = torch.optim.Adam([latent], lr=0.05)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = (model.synthesis(latent, quality) - padded).square().mean()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return as_decoded(model.synthesis(latent, quality), image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--qualities", type=float, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--optimise-steps", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codec = load_codec(args.model)
    codec.model.requires_grad_(False)  # only the fitted latent is optimised
    qualities = args.qualities if codec.variable_rate else [None]
    paths = sorted(KODAK.glob("*.png"))[: args.images]
    images = [load_image(path)[0] for path in paths]
    print(f"model {args.model}, {len(images)} Kodak images\n")
    fitted_header = f" fitted latent, {args.optimise_steps} steps (dB) |" if args.optimise_steps else ""
    print(f"| quality | bpp | coded PSNR (dB) | unquantised PSNR (dB) | headroom (dB) |{fitted_header}")
    print("| --- | --- | --- | --- | --- |" + (" --- |" if args.optimise_steps else ""))
    for quality in qualities:
        bpps, coded, ceiling, fitted = [], [], [], []
        for image in images:
            data = codec.compress(image, quality=quality)
            bpps.append(data.bpp)
            coded.append(psnr(image, codec.decompress(data).pixels))
            ceiling.append(psnr(image, unquantised_reconstruction(codec.model, image, quality, codec.options.pad_mode)))
            if args.optimise_steps:
                fitted.append(
                    psnr(
                        image,
                        fitted_latent_reconstruction(
                            codec.model, image, quality, codec.options.pad_mode, args.optimise_steps
                        ),
                    )
                )
        print(
            f"| {quality} | {np.mean(bpps):.3f} | {np.mean(coded):.2f} | {np.mean(ceiling):.2f} | "
            f"{np.mean(ceiling) - np.mean(coded):.2f} |" + (f" {np.mean(fitted):.2f} |" if fitted else "")
        )


if __name__ == "__main__":
    main()
