"""The transforms in onnxruntime against PyTorch: time per 768x512 image on this CPU.

    python benchmarks/onnx_speed.py [--model default] [--onnx DIR] [--threads 2] [--runs 7]

Exports the model (``dcae export MODEL --onnx DIR``) unless ``--onnx`` names an earlier export,
then times the analysis (image to y and z) and the synthesis (y to image) in both runtimes with
the same thread count, and compares the synthesis' 8-bit output.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from PIL import Image

from dcae.codec import load_codec
from dcae.export import export_onnx
from dcae.imageio import image_tensor, pad_image, to_uint8

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"


def median_seconds(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--onnx", type=Path, help="an earlier export of the same model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codec = load_codec(args.model)
    folder = args.onnx or Path(tempfile.mkdtemp())
    if args.onnx is None:
        start = time.perf_counter()
        export_onnx(codec.model, folder, codec.name, codec.digest_hex)
        print(f"export: {time.perf_counter() - start:.0f} s")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    sessions = {
        name: onnxruntime.InferenceSession(str(folder / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
        for name in ("analysis", "synthesis")
    }
    image = np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))
    x = pad_image(image_tensor(image[None]), 64)
    quality = 2.5
    feed_q = {"quality": np.array(quality, np.float32)} if codec.variable_rate else {}
    with torch.inference_mode():
        y = torch.round(codec.model.analysis(x, quality))
        torch_pixels = to_uint8(codec.model.synthesis(y, quality))[0]
    rows = []
    with torch.inference_mode():
        rows.append(
            (
                "analysis",
                median_seconds(lambda: codec.model.h_a(codec.model.analysis(x, quality)), args.runs),
                median_seconds(lambda: sessions["analysis"].run(None, {"x": x.numpy(), **feed_q}), args.runs),
            )
        )
        rows.append(
            (
                "synthesis",
                median_seconds(lambda: codec.model.synthesis(y, quality), args.runs),
                median_seconds(lambda: sessions["synthesis"].run(None, {"y_hat": y.numpy(), **feed_q}), args.runs),
            )
        )
    (x_ort,) = sessions["synthesis"].run(None, {"y_hat": y.numpy(), **feed_q})
    ort_pixels = to_uint8(torch.from_numpy(x_ort))[0]
    differing = np.abs(ort_pixels.astype(int) - torch_pixels.astype(int))
    print(f"model {args.model}, 768x512 (kodim23), {args.threads} threads, median of {args.runs} runs\n")
    print("| transform | PyTorch (s) | onnxruntime (s) | ratio |")
    print("| --- | --- | --- | --- |")
    for name, torch_s, ort_s in rows:
        print(f"| {name} | {torch_s:.3f} | {ort_s:.3f} | {torch_s / ort_s:.2f}x |")
    print(
        f"\nsynthesis output, 8-bit: largest difference {differing.max()} level(s), "
        f"{np.count_nonzero(differing)} of {differing.size} samples differ"
    )


if __name__ == "__main__":
    main()
