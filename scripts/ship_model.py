"""Copy a training checkpoint into the package's model zoo (float16 safetensors + JSON card).

    python scripts/ship_model.py runs/compact/latest.safetensors --name default

The training metadata (command, data, step, validation metrics, commit) travels with the
weights; the digest is recomputed for the stored float16 tensors.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dcae.weights import load_weights, save_weights
from dcae.zoo import WEIGHTS_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--name", default="default")
    parser.add_argument("--note", default="", help="free text stored in the metadata")
    args = parser.parse_args()
    model, meta = load_weights(args.checkpoint)
    meta.pop("digest", None)
    meta["shipped_from"] = str(args.checkpoint)
    meta["stored_dtype"] = "float16"
    if args.note:
        meta["note"] = args.note
    target = WEIGHTS_DIR / f"{args.name}.safetensors"
    written = save_weights(model, target, meta, dtype=torch.float16)
    (WEIGHTS_DIR / f"{args.name}.json").write_text(json.dumps(written, indent=2) + "\n")
    print(
        f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB), digest {written['digest'][:16]}, step {meta['step']}"
    )


if __name__ == "__main__":
    main()
