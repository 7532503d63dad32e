#!/usr/bin/env bash
# Train the compact model on a lent GPU machine for a fixed time and bring the weights back.
#
# Prepared and tested on CPU (see docs/models.md). On the CPU machine, once:
#   echo /.whl/ >> .git/info/exclude; echo /.pack/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl constriction==0.5.0 pytorch-msssim==1.0.0
#   python scripts/make_train_pack.py ../shared/datasets/train .pack/train   # ~40 MB
#   cp runs/compact/latest.safetensors .pack/init.safetensors   # or the shipped weights
# Then run (carry .whl and .pack):
#   bash scripts/gpu_train.sh MINUTES
set -euo pipefail
MINUTES="${1:-8}"
OUT="${OUT:?set OUT to the folder that comes back}"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c "import constriction, pytorch_msssim" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
INIT=()
if [ -f .pack/init.safetensors ]; then INIT=(--init-from .pack/init.safetensors); fi
set +e
"$PYTHON" -m dcae.cli train configs/compact-gpu.toml --train-data .pack/train --val-data "" --downscale 1 1 \
    --time-limit-minutes "$MINUTES" --out /tmp/run "${INIT[@]}" ${EXTRA_ARGS:-} > /tmp/train.log 2>&1
status=$?
set -e
tr '\r' '\n' < /tmp/train.log | grep -v "^train:" | tail -20
[ "$status" -eq 0 ] || exit "$status"
mkdir -p "$OUT"
# Files coming back are limited to 16 MiB each: split the weights, rejoin with
#   cat latest.safetensors.part-* > latest.safetensors
split -b 15000000 /tmp/run/latest.safetensors "$OUT/latest.safetensors.part-"
cp /tmp/run/latest.json "$OUT"/
if [ -f /tmp/run/log.csv ]; then cp /tmp/run/log.csv "$OUT"/; fi
