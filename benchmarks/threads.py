"""Thread counts on an idle and on a busy machine: encode, decode and a training step.

    python benchmarks/threads.py [--runs 5] [--competitors 1] [--train]

Each cell runs in a fresh process with ``torch.set_num_threads(N)`` and OpenMP's wait policy
(``OMP_WAIT_POLICY``: ``active`` spins while waiting for work, PyTorch's default; ``passive``
sleeps). "busy" starts ``--competitors`` processes that each keep one core busy (a pure Python
loop, like any other program a user runs) for the duration of the cell. Times are medians of a
768x512 portable encode and decode (kodim23) and, with ``--train``, of a compact training step
(batch 8 of 256x256 crops, bf16).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"

CODEC_CHILD = r"""
import json, statistics, sys, time
import numpy as np, torch
from PIL import Image
from dcae.codec import load_codec
torch.set_num_threads(int(sys.argv[1]))
codec = load_codec("default")
image = np.asarray(Image.open(sys.argv[2]).convert("RGB"))
data = codec.compress(image, quality=2.5).data
encode, decode = [], []
for _ in range(int(sys.argv[3]) + 1):
    start = time.perf_counter(); codec.compress(image, quality=2.5); encode.append(time.perf_counter() - start)
    start = time.perf_counter(); codec.decompress(data); decode.append(time.perf_counter() - start)
print(json.dumps({"encode": statistics.median(encode[1:]), "decode": statistics.median(decode[1:])}))
"""

TRAIN_CHILD = r"""
import json, statistics, sys, tempfile, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
from dcae.training import Trainer, load_train_config
threads, runs = int(sys.argv[1]), int(sys.argv[3])
with tempfile.TemporaryDirectory() as folder:
    Image.open(sys.argv[2]).convert("RGB").save(Path(folder, "photo.png"))
    config = load_train_config(None, dict(model="compact", lambdas=[0.0006, 0.0015, 0.0038, 0.0095, 0.024, 0.06],
        lambda_sampling="image", train_data=folder, val_data="", patch=256, batch_size=8, workers=0,
        threads=threads, amp="bf16", out=str(Path(folder, "run"))))
    trainer = Trainer(config, command="benchmarks/threads.py")
    batch = torch.rand(8, 3, 256, 256)
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter(); trainer.train_step(batch); times.append(time.perf_counter() - start)
print(json.dumps({"train step": statistics.median(times[1:])}))
"""

SPIN = "while True: pass"


def cell(child: str, threads: int, policy: str, competitors: int, runs: int) -> dict[str, float]:
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(competitors)]
    try:
        env = {**os.environ, "OMP_WAIT_POLICY": policy}
        command = [sys.executable, "-c", child, str(threads), str(KODAK / "kodim23.png"), str(runs)]
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        return json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--competitors", type=int, default=1)
    parser.add_argument("--train", action="store_true", help="also time a training step")
    args = parser.parse_args()
    columns = ["encode", "decode"] + (["train step"] if args.train else [])
    print(f"median seconds; busy: {args.competitors} competing process(es) spinning on a core\n")
    print("| machine | threads | OpenMP wait | " + " | ".join(columns) + " |")
    print("| --- | --- | --- |" + " --- |" * len(columns))
    for load, competitors in (("idle", 0), ("busy", args.competitors)):
        for threads in (1, 2):
            for policy in ("active", "passive"):
                values = cell(CODEC_CHILD, threads, policy, competitors, args.runs)
                if args.train:
                    values.update(cell(TRAIN_CHILD, threads, policy, competitors, max(2, args.runs // 2)))
                cells = " | ".join(f"{values[c]:.2f}" for c in columns)
                print(f"| {load} | {threads} | {policy} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
