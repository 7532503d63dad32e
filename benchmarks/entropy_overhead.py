"""Coded size versus the ideal code length, per scale-table size and padding mode.

    python benchmarks/entropy_overhead.py [--model default] [--images 6] [--qualities 0 2.5 5]

For each image and quality: the ideal rate is -sum(log2 p) of the model's own likelihoods for
y and z (hard rounding, as the codec), the coded rate is the payload (and the whole file). The
table prints the median and worst overhead of payload over ideal for each scale-table size,
and the file size with replicate versus reflect padding.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from dcae import bitstream
from dcae.bitstream import PadMode
from dcae.codec import Codec, CodecOptions, load_codec
from dcae.imageio import image_tensor, load_image, pad_image

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"


def ideal_bits(codec: Codec, array: np.ndarray, quality, pad_mode: PadMode) -> float:
    with torch.inference_mode():
        out = codec.model(pad_image(image_tensor(array[None]), 64, pad_mode), quality=quality)
    return float(sum(-torch.log2(lik.double()).sum() for lik in out["likelihoods"].values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--qualities", type=float, nargs="+", default=[0.0, 2.5, 5.0])
    parser.add_argument("--tables", type=int, nargs="+", default=[64, 128, 160, 256])
    args = parser.parse_args()
    torch.set_num_threads(2)
    base = load_codec(args.model)
    paths = sorted(KODAK.glob("*.png"))[: args.images]
    qualities = args.qualities if base.variable_rate else [None]
    print(f"model {args.model}, {len(paths)} Kodak images, qualities {qualities}\n")
    print("| scale table | median payload overhead | worst | mean bpp |")
    print("| --- | --- | --- | --- |")
    for size in args.tables:
        codec = Codec(base.model, digest=base.digest_hex, options=CodecOptions(scale_table_size=size))
        overheads, bpps = [], []
        for path in paths:
            array, _ = load_image(path)
            for q in qualities:
                data = codec.compress(array, quality=q).data
                _, payload = bitstream.unpack(data)
                ideal = ideal_bits(codec, array, q, PadMode.REPLICATE)
                overheads.append(100 * (8 * len(payload) / ideal - 1))
                bpps.append(8 * len(data) / (array.shape[0] * array.shape[1]))
        print(f"| {size} | {statistics.median(overheads):+.3f}% | {max(overheads):+.3f}% | {np.mean(bpps):.4f} |")
    print(f"\nheader + CRC: {len(data) - len(payload)} bytes per file\n")
    print("| padding | mean file bytes | relative |")
    print("| --- | --- | --- |")
    sizes = {}
    odd = [load_image(p)[0][:500, :700] for p in paths]  # crop so that padding is needed (to 512x704)
    for mode in (PadMode.REPLICATE, PadMode.REFLECT):
        codec = Codec(base.model, digest=base.digest_hex, options=CodecOptions(pad_mode=mode))
        sizes[mode] = np.mean([len(codec.compress(a, quality=q).data) for a in odd for q in qualities])
    for mode, value in sizes.items():
        print(f"| {mode.name.lower()} | {value:.0f} | {value / sizes[PadMode.REPLICATE]:.4f} |")


if __name__ == "__main__":
    main()
