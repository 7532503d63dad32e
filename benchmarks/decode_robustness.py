"""What happens when the decoder's arithmetic differs slightly from the encoder's.

    python benchmarks/decode_robustness.py [--model default] [--images 6] [--quality 2.5]
        [--noise 1e-12 1e-7 1e-6]

A file must be decoded by a machine that predicts every probability exactly as the encoder did.
Another processor (its vector width changes the order of float sums), a GPU or another PyTorch
release computes the entropy parameters with differences in the last bits. This benchmark
encodes Kodak images, then decodes them with each slice's predicted means and scales multiplied
by ``1 + noise * N(0, 1)``, for fast files (float32 parameters) and portable files (float64,
``--portable``). Float32's own rounding is about 6e-8 relative (smaller noise leaves a float32
value unchanged) and differences between machines grow through the network's layers; float64's
rounding is about 1e-16. Each decode is counted as
identical (bit-exact image), close (the same latents, so the checksum passed, but pixels off by
at most 2 levels: the noisy means shift the reconstruction slightly), refused (the latent
checksum raised ``LatentMismatchError``) or wrong (a visibly different image, which the checksum
should never let through).

A last row per kind decodes with PyTorch's oneDNN convolutions switched off
(``torch.backends.mkldnn.enabled = False``): a real second implementation, whose different
summation order stands in for another machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dcae.codec import LatentMismatchError, load_codec
from dcae.imageio import load_image
from dcae.model import DCAE, SliceContext

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"
ORIGINAL_SLICE_CONTEXT = DCAE.slice_context


def perturb_predictions(noise: float) -> None:
    """Make every later ``slice_context`` call return means and scales with relative noise."""

    def perturbed(self: DCAE, index: int, hyper: torch.Tensor, previous: list[torch.Tensor]) -> SliceContext:
        ctx = ORIGINAL_SLICE_CONTEXT(self, index, hyper, previous)
        generator = torch.Generator().manual_seed(1000 + index)
        factor = 1 + noise * torch.randn(ctx.scale.shape, generator=generator, dtype=torch.float64)
        return SliceContext(
            mean=ctx.mean * factor.to(ctx.mean.dtype),
            scale=ctx.scale * factor.flip(-1).to(ctx.scale.dtype),
            support=ctx.support,
        )

    DCAE.slice_context = perturbed


def tally(codec, coded: list[tuple[bytes, np.ndarray]]) -> dict[str, int]:
    """Decode every file and count how each one came back."""
    counts = {"identical": 0, "close": 0, "refused": 0, "wrong": 0}
    for data, expected in coded:
        try:
            decoded = codec.decompress(data)
        except LatentMismatchError:
            counts["refused"] += 1
            continue
        error = np.abs(decoded.astype(int) - expected).max()
        counts["identical" if error == 0 else "close" if error <= 2 else "wrong"] += 1
    return counts


def report(portable: bool, noise: str, counts: dict[str, int]) -> None:
    kind = "portable (float64)" if portable else "fast (float32)"
    cells = " | ".join(str(counts[k]) for k in ("identical", "close", "refused", "wrong"))
    print(f"| {kind} | {noise} | {cells} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--quality", type=float, default=2.5)
    parser.add_argument("--noise", type=float, nargs="+", default=[1e-12, 1e-7, 1e-6])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = sorted(KODAK.glob("*.png"))[:: max(1, 24 // args.images)][: args.images]
    print(f"model {args.model}, quality {args.quality}, {len(paths)} Kodak images\n")
    print("| files | relative noise | identical | close | refused (checksum) | wrong image |")
    print("| --- | --- | --- | --- | --- | --- |")
    for portable in (False, True):
        codec = load_codec(args.model, portable=portable)
        coded = []
        for path in paths:
            data = codec.compress(load_image(path)[0], quality=args.quality)
            coded.append((data, codec.decompress(data)))
        for noise in args.noise:
            perturb_predictions(noise)
            try:
                counts = tally(codec, coded)
            finally:
                DCAE.slice_context = ORIGINAL_SLICE_CONTEXT
            report(portable, f"{noise:g}", counts)
        torch.backends.mkldnn.enabled = False
        try:
            report(portable, "none, oneDNN off", tally(codec, coded))
        finally:
            torch.backends.mkldnn.enabled = True


if __name__ == "__main__":
    main()
