"""Release a training checkpoint as a new model version of the zoo (float16 safetensors + JSON card).

    python scripts/ship_model.py runs/compact/ema.safetensors --name compact-mse-v2 \
        --training-steps 80000 --description "compact variable-rate DCAE (MSE), ..."

Models are released, never replaced: the name must be new, the weights file is written once, and
the registry (src/dcae/zoo/releases.json) gains the release and points the ``default`` alias at
it. Only release a version that is at least 2 BD-rate points better on Kodak than the last one
(docs/models.md, "Release policy"); then write its golden files with scripts/make_golden.py.
The training metadata (commands, data, step, validation metrics, commit) travels with the
weights; the digest is computed for the stored float16 tensors.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
from pathlib import Path

import torch

from dcae.weights import load_weights, save_weights
from dcae.zoo import WEIGHTS_DIR, ZOO_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--name", required=True, help="new release name, e.g. compact-mse-v2")
    parser.add_argument("--training-steps", type=int, required=True, help="all steps the weights have seen")
    parser.add_argument("--description", required=True)
    parser.add_argument("--note", default="", help="free text stored in the metadata")
    args = parser.parse_args()
    if not re.fullmatch(r"[a-z0-9-]+-v[0-9]+", args.name):
        raise SystemExit(f"release names look like compact-mse-v2, not {args.name!r}")
    registry_path = ZOO_DIR / "releases.json"
    registry = json.loads(registry_path.read_text())
    target = WEIGHTS_DIR / f"{args.name}.safetensors"
    if target.exists() or any(r["name"] == args.name for r in registry["releases"]):
        raise SystemExit(f"{args.name} is already released; releases are never replaced")
    model, meta = load_weights(args.checkpoint)
    meta.pop("digest", None)
    meta.update(shipped_from=str(args.checkpoint), stored_dtype="float16", release=args.name)
    if args.note:
        meta["note"] = args.note
    written = save_weights(model, target, meta, dtype=torch.float16)
    (WEIGHTS_DIR / f"{args.name}.json").write_text(json.dumps(written, indent=2) + "\n")
    registry["releases"].append(
        {
            "name": args.name,
            "digest": written["digest"],
            "file": target.name,
            "released": datetime.date.today().isoformat(),
            "training_steps": args.training_steps,
            "description": args.description,
        }
    )
    registry["aliases"]["default"] = args.name
    registry_path.write_text(json.dumps(registry, indent=2) + "\n")
    print(f"released {args.name}: {target} ({target.stat().st_size / 1e6:.1f} MB), digest {written['digest'][:16]}")


if __name__ == "__main__":
    main()
