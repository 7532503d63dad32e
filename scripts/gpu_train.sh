#!/usr/bin/env bash
# Train the compact model on a lent GPU machine for a fixed time and bring the weights back.
#
#   bash scripts/gpu_train.sh MINUTES [DECAY_MINUTES]
#   bash scripts/gpu_train.sh resume MINUTES     # a later call on the still-warm machine
#
# A fresh call first runs the CUDA-only tests (RUN_TESTS=0 skips them) and a throughput probe
# (benchmarks/train_speed.py on the device for batch sizes PROBE_BATCHES, default "16 32 64 128"):
# scripts/pick_batch.py keeps the batch that trains clearly more images per second and scales
# the learning rate with it. Each check has a time limit; a failed check is reported and
# training goes on (with the config's batch if the probe failed). Logs come back in $OUT.
#
# Then two phases on one run folder: MINUTES - DECAY_MINUTES at the chosen learning rate, then
# DECAY_MINUTES at a quarter of it (a time-limited run cannot know its step count in advance, and
# the CPU history of this model showed that the lower-rate phase gives most of the gain).
# With TOTAL_SECONDS set (the device call's time limit less a margin), the first phase is cut so
# that checks and training together end within it.
# The weights come back after each phase, so a crash in the second still returns the first.
# Starts from .pack/init.safetensors if present, else from the shipped default weights.
# BATCH_LR="64 5e-5" skips the probe and trains with that batch and learning rate.
# "resume" continues the run folder of an earlier call at its current learning rate and batch.
#
# RUN (default /tmp/run) and TRAIN_DATA (default .pack/train) can be changed; tests/test_scripts.py
# runs the whole script on CPU with small settings. Prepared on CPU (see docs/models.md); once:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl constriction==0.5.0 pytorch-msssim==1.0.0 tqdm
#   python scripts/make_train_pack.py ../shared/datasets/train .pack/train   # ~42 MB
# Then one device call carrying .whl and .pack/train (the repository itself is ~20 MB of the 64 MiB).
set -euo pipefail
MODE=fresh
if [ "${1:-}" = resume ]; then MODE=resume; shift; fi
MINUTES="${1:-8}"
DECAY_MINUTES="${2:-2}"
OUT="${OUT:?set OUT to the folder that comes back}"
PYTHON="${PYTHON:-python3}"
RUN="${RUN:-/tmp/run}"
CONFIG=configs/compact-gpu.toml
TRAIN_DATA="${TRAIN_DATA:-.pack/train}"
if ! "$PYTHON" -c "import constriction, pytorch_msssim, tqdm" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
INIT=.pack/init.safetensors
[ -f "$INIT" ] || INIT=src/dcae/zoo/weights/compact-mse-v1.safetensors
mkdir -p "$OUT"
bring_back() {  # files coming back are limited to 16 MiB each; rejoin with cat latest.safetensors.part-*
    rm -f "$OUT"/latest.safetensors.part-*
    split -b 15000000 "$RUN/latest.safetensors" "$OUT/latest.safetensors.part-"
    cp "$RUN/latest.json" "$OUT"/
    if [ -f "$RUN/log.csv" ]; then cp "$RUN/log.csv" "$OUT"/; fi
}

train() {  # train LOG ARGS...: one phase, its log's tail printed, the weights brought back
    local log="$1"; shift
    set +e
    "$PYTHON" -m dcae.cli train "$CONFIG" --train-data "$TRAIN_DATA" --val-data "" \
        --downscale 1 1 --out "$RUN" --batch-size "$BATCH" "$@" ${EXTRA_ARGS:-} > "$log" 2>&1
    local status=$?
    set -e
    tr '\r' '\n' < "$log" | grep -v "^train:" | tail -8
    tr '\r' '\n' < "$log" | grep "^train:" | tail -1
    if [ -f "$RUN/latest.safetensors" ]; then bring_back; fi
    return "$status"
}

if [ "$MODE" = resume ]; then
    [ -f "$RUN/latest.state.pt" ] || { echo "nothing to resume in $RUN (the machine was not warm)"; exit 3; }
    BATCH=$(cat "$RUN/batch")
    train /tmp/resume.log --resume --time-limit-minutes "$MINUTES"
    exit
fi

read -r BATCH LR < <("$PYTHON" -c "import tomllib; c = tomllib.load(open('$CONFIG', 'rb')); print(c['batch_size'], c['lr'])")
BASE_BATCH=$BATCH BASE_LR=$LR
if [ "${RUN_TESTS:-1}" = 1 ]; then
    set +e
    timeout 90 "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider $(grep -l "mark.cuda" tests/test_*.py) \
        > "$OUT/cuda-tests.log" 2>&1
    echo "CUDA-only tests (exit $?):"; tail -4 "$OUT/cuda-tests.log"
    set -e
fi
mkdir -p "$RUN"
if [ -n "${BATCH_LR:-}" ]; then  # "BATCH LR" given: no probe (a short follow-up call on a known machine)
    read -r BATCH LR <<< "$BATCH_LR"
else
    set +e
    timeout 120 "$PYTHON" benchmarks/train_speed.py --config "$CONFIG" --devices "${PROBE_DEVICE:-cuda}" \
        --batch ${PROBE_BATCHES:-16 32 64 128} --patch "${PROBE_PATCH:-256}" --steps 6 --json "$RUN/probe.json" \
        > "$OUT/probe.log" 2>&1
    probe=$?
    set -e
    cat "$OUT/probe.log"
    choice=""
    if [ "$probe" = 0 ]; then
        choice=$("$PYTHON" scripts/pick_batch.py "$RUN/probe.json" --base-batch "$BASE_BATCH" --base-lr "$BASE_LR" || true)
    fi
    if [ -n "$choice" ]; then read -r BATCH LR <<< "$choice"; else echo "no probe result; training with the config's batch"; fi
fi
echo "$BATCH" > "$RUN/batch"
echo "batch $BATCH, learning rate $LR (config: batch $BASE_BATCH, $BASE_LR); checks took ${SECONDS} s"

first=$("$PYTHON" -c "print(max(0.0, $MINUTES - $DECAY_MINUTES))")
if [ -n "${TOTAL_SECONDS:-}" ]; then  # leave ~20 s per phase for start-up and bringing weights back
    first=$("$PYTHON" -c "print(round(max(0.5, min($first, ($TOTAL_SECONDS - $SECONDS - 40) / 60 - $DECAY_MINUTES)), 2))")
fi
echo "phase 1: $first min"
train /tmp/phase1.log --init-from "$INIT" --lr "$LR" --time-limit-minutes "$first" --force
step=$("$PYTHON" -c "import json; print(json.load(open('$RUN/latest.json'))['step'])")
echo "phase 1 ended at step $step; decaying the learning rate x0.25 for $DECAY_MINUTES min"
train /tmp/phase2.log --resume --lr-milestones $((step + 1)) --lr-gamma 0.25 --time-limit-minutes "$DECAY_MINUTES"
