"""Where one ``dcae compress`` run spends its time: import, model load, encode, write.

    python benchmarks/startup.py [--runs 5]

Each run is a fresh Python process that times its own stages with ``time.perf_counter``:
importing the command line (no PyTorch), importing PyTorch and the codec, loading the
``default`` model (weights and coding tables), encoding kodim23 (768x512) and writing the
file. It also times loading a random model of the 119.4M-parameter ``reference`` preset from a
float16 weights file, and the whole ``dcae models`` and ``dcae info`` commands.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"

CHILD = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
import dcae.cli
t1 = time.perf_counter()
import torch
from dcae.codec import load_codec
t2 = time.perf_counter()
codec = load_codec(sys.argv[1])
t3 = time.perf_counter()
if not codec.variable_rate:  # the reference preset: only its loading is measured
    print(json.dumps({"load the model": t3 - t2}))
    sys.exit()
compressed = codec.compress(sys.argv[2], quality=2.5)
t4 = time.perf_counter()
Path(sys.argv[3]).write_bytes(compressed.data)
t5 = time.perf_counter()
print(json.dumps({"import dcae.cli": t1 - t0, "import torch and the codec": t2 - t1, "load the model": t3 - t2,
                  "encode": t4 - t3, "write": t5 - t4}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder, "x.dcae")
        reference = Path(folder, "reference.safetensors")
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, torch, dcae; from dcae.weights import save_weights; "
                "save_weights(dcae.build_model('reference'), sys.argv[1], dtype=torch.float16)",
                str(reference),
            ],
            check=True,
        )
        stages: dict[str, list[float]] = {}
        for model in ("default", str(reference)):
            for _ in range(args.runs):
                result = subprocess.run(
                    [sys.executable, "-c", CHILD, model, str(KODAK / "kodim23.png"), str(out)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                times = json.loads(result.stdout.strip().splitlines()[-1])
                if model != "default":
                    times = {"load the reference preset (119.4M parameters)": times["load the model"]}
                for stage, seconds in times.items():
                    stages.setdefault(stage, []).append(seconds)
        for label, argv in (
            ("`dcae models` (whole process)", ["models"]),
            ("`dcae info` (whole process)", ["info", str(out)]),
        ):
            for _ in range(args.runs):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "dcae.cli", *argv], check=True, capture_output=True)
                stages.setdefault(label, []).append(time.perf_counter() - start)
    print(f"median of {args.runs} fresh processes\n")
    print("| stage | seconds |")
    print("| --- | --- |")
    for stage, values in stages.items():
        print(f"| {stage} | {statistics.median(values):.3f} |")


if __name__ == "__main__":
    main()
