"""Do files decode to the same latents when the decoder's arithmetic differs from the encoder's?

    python benchmarks/decode_robustness.py [--model default] [--images 24] [--qualities 0 1 2 3 4 5]
        [--machine-specific]

Encodes Kodak images at every integer quality (portable files, the default; machine-specific
ones with ``--machine-specific``) with 2 threads, then decodes every file again under each of
these stand-ins for another machine:

* 1 thread and 2 threads (kernels split their sums differently),
* oneDNN off (``torch.backends.mkldnn.enabled = False``: PyTorch's other CPU convolution),
* every entropy parameter multiplied by ``1 + 1e-12 * N(0, 1)`` (about a thousand times the
  largest float64 difference between two implementations measured below),
* the synthesis weights multiplied by ``1 + 1e-6 * N(0, 1)`` (a float32 transform that rounds
  differently: it may move a pixel, it cannot move a latent).

Each decode is "same latents" (the latent checksum passed; pixels within one level of the
first decode, the documented guarantee), "refused" (``LatentMismatchError``) or "wrong" (the
checksum passed but a pixel moved by more than a level; the guarantee broken).

It then measures the residual risk of portable files: for every coded scale decision, the
distance its table index moves (in units of the table's step) when the float64 entropy
parameters are computed by a second arrangement of the same maths (the model's own layers in
float64 instead of ``dcae.entropy_parameters``' fused convolutions, so sums run in other orders). A
decision flips only if a table boundary falls inside that distance, and the fractional parts
of the indexes are spread evenly, so the expected number of flipped decisions per image is the
sum of those distances.
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path

import numpy as np
import torch

from dcae.codec import Codec, load_codec
from dcae.entropy.gaussian import SCALE_BOUND
from dcae.entropy_parameters import EntropyParameterNetworks
from dcae.errors import LatentMismatchError
from dcae.imageio import image_tensor, load_image, pad_image
from dcae.model import SliceContext, run_slices

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"


def perturbed_parameters(noise: float):
    """An EntropyParameterNetworks.slice_context whose means and scales carry relative noise."""
    original = EntropyParameterNetworks.slice_context

    def slice_context(self, index, hyper, previous):
        ctx = original(self, index, hyper, previous)
        generator = torch.Generator().manual_seed(1000 + index)
        factor = 1 + noise * torch.randn(ctx.scale.shape, generator=generator, dtype=torch.float64)
        return SliceContext(ctx.mean * factor, ctx.scale * factor.flip(-1), ctx.support)

    return original, slice_context


def decode_all(codec, files, reference) -> dict[str, int]:
    counts = {"same latents": 0, "refused": 0, "wrong": 0}
    for data, expected in zip(files, reference):
        try:
            pixels = codec.decompress(data).pixels
        except LatentMismatchError:
            counts["refused"] += 1
            continue
        close = np.abs(pixels.astype(int) - expected.astype(int)).max() <= 1
        counts["same latents" if close else "wrong"] += 1
    return counts


def index_positions(params, hyper, y, tables) -> list[torch.Tensor]:
    """The continuous table position of every coded scale, slice by slice (encoder's path)."""
    positions = []

    def record(index, y_slice, ctx):
        logs = torch.log(ctx.scale.double().clamp_min(SCALE_BOUND))
        positions.append((logs - tables._log_low) / tables._log_step)
        return torch.round(y_slice - ctx.mean) + ctx.mean

    run_slices(params, hyper, y, record)
    return positions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--qualities", type=float, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--machine-specific", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    codec = load_codec(args.model, portable=not args.machine_specific)
    paths = sorted(KODAK.glob("*.png"))[: args.images]
    images = [load_image(p)[0] for p in paths]
    files = [codec.compress(image, quality=q).data for image in images for q in args.qualities]
    reference = [codec.decompress(data).pixels for data in files]
    kind = "machine-specific" if args.machine_specific else "portable"
    print(f"model {args.model}, {kind} files: {len(images)} Kodak images x qualities {args.qualities}\n")
    print("| decoded with | same latents | refused | wrong |")
    print("| --- | --- | --- | --- |")

    def report(label: str, counts: dict[str, int]) -> None:
        print(f"| {label} | {counts['same latents']} | {counts['refused']} | {counts['wrong']} |", flush=True)

    for threads in (1, 2):
        torch.set_num_threads(threads)
        report(f"{threads} thread{'s' if threads > 1 else ''}", decode_all(codec, files, reference))
    torch.backends.mkldnn.enabled = False
    report("oneDNN off", decode_all(codec, files, reference))
    torch.backends.mkldnn.enabled = True
    original, noisy = perturbed_parameters(1e-12)
    EntropyParameterNetworks.slice_context = noisy
    report("entropy parameters x (1 + 1e-12 N)", decode_all(codec, files, reference))
    EntropyParameterNetworks.slice_context = original
    shaken = Codec(copy.deepcopy(codec.model), digest=codec.digest_hex, options=codec.options)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in shaken.model.g_s.parameters():
            weight.mul_(1 + 1e-6 * torch.randn(weight.shape, generator=generator))
    report("synthesis weights x (1 + 1e-6 N)", decode_all(shaken, files, reference))

    if args.machine_specific:
        return
    # Residual risk: how far float64 sums in another order move each coded decision.
    model = codec.model
    fused = EntropyParameterNetworks(model, torch.float64, torch.device("cpu"))
    plain = copy.deepcopy(model).double()
    tables = codec.latents.gaussian_tables(codec.options.scale_table_size)
    expected_flips, largest, decisions = [], 0.0, 0
    with torch.inference_mode():
        for image in images:
            for quality in args.qualities:
                x = pad_image(image_tensor(image[None]), 64)
                y = model.gain(model.g_a(x), quality)
                z_hat = torch.round(model.h_a(y) - model.z_medians()) + model.z_medians()
                a = index_positions(fused, fused.hyper_features(z_hat.double()), y.double(), tables)
                b = index_positions(plain, plain.hyper_features(z_hat.double()), y.double(), tables)
                moved = torch.cat([(p - q).abs().flatten() for p, q in zip(a, b)])
                expected_flips.append(float(moved.sum()))
                largest = max(largest, float(moved.max()))
                decisions += moved.numel()
    per_image = len(images) and decisions / len(expected_flips)
    print(
        f"\nresidual risk: {decisions:,} coded scale decisions; a second float64 arrangement moves them by "
        f"{largest:.2e} table steps at most; expected flipped decisions per file: median "
        f"{statistics.median(expected_flips):.1e}, largest {max(expected_flips):.1e} "
        f"({per_image:,.0f} decisions per file)"
    )


if __name__ == "__main__":
    main()
