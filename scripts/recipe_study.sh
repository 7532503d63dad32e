#!/usr/bin/env bash
# The training-recipe study: several variants, each continuing the same weights for the same CPU
# time, judged by one fixed evaluation on training photos held back from training (never Kodak).
#
#   scripts/recipe_study.sh START_WEIGHTS STUDY_DIR [CPU_MINUTES] [VARIANT ...]
#
# Every variant trains with one torch thread and no loader workers, so its budget (process CPU
# time, counted by the trainer over resumes) means the same on an idle or a busy machine. Each
# variant is then measured with `dcae eval` on the held-back photos and compared, by BD-rate over
# 0.1-1.0 bpp, with AVIF 4:4:4 and WebP measured on the same photos. A re-run skips what is done
# and resumes a variant that was cut short. Results: STUDY_DIR/<variant>/eval/bd_table.md.
set -euo pipefail

START=${1:?usage: recipe_study.sh START_WEIGHTS STUDY_DIR [CPU_MINUTES] [VARIANT ...]}
STUDY=${2:?usage: recipe_study.sh START_WEIGHTS STUDY_DIR [CPU_MINUTES] [VARIANT ...]}
BUDGET=${3:-25}
shift $(($# < 3 ? $# : 3))
VARIANTS=("$@")
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=(habit ema-1e-4 lr-1e-4 high-rates crops-128)

DCAE=${DCAE:-dcae}
DATA=${DATA:-../shared/datasets/train}
HOLDOUT=48
HELD="$STUDY/holdout"

# The recipe every variant shares (the shipped model's CPU phases), then the variant's changes.
common=(configs/compact-gpu.toml --init-from "$START" --train-data "$DATA" --holdout "$HOLDOUT" --val-data ""
    --val-every 1000000 --downscale 0.6 1.0 --batch-size 8 --workers 0 --threads 1 --device cpu --amp bf16
    --compile --seed 16 --lr 3e-5 --checkpoint-minutes 5 --log-every 25)

variant_flags() {
    case "$1" in
        habit) echo "" ;;                                      # what the last phases did
        ema-1e-4) echo "--lr 1e-4 --ema-decay 0.995" ;;        # faster, averaged
        lr-1e-4) echo "--lr 1e-4" ;;                           # faster, not averaged
        high-rates) echo "--lambda-weights 1 1 1 1.5 2 2.5" ;; # more draws where the curve is flat
        crops-128) echo "--patch 128 --batch-size 32" ;;       # same pixels per step, more crops
        habit-decay) echo "--lr-milestones 280 --lr-gamma 0.3" ;; # the habit, cut to 30% two thirds in
        low-lr) echo "--lr 1e-5" ;;                              # barely moving: what held-back photos cost
        warmup) echo "--lr-warmup-steps 100" ;;                 # the habit, easing a fresh Adam in
        habit-seed17) echo "--seed 17" ;;                        # the habit on other crops: training noise
        # One part alone on cached latents (2 crops per photo, shared by both variants).
        synthesis) echo "--train-parts synthesis --cache-crops 2 --latent-cache $STUDY/latent-cache.safetensors" ;;
        entropy) echo "--train-parts entropy --cache-crops 2 --latent-cache $STUDY/latent-cache.safetensors" ;;
        # The synthesis alone cannot change the rate: learning rates the whole model does not bear.
        synthesis-1e-4) echo "--train-parts synthesis --cache-crops 2 --latent-cache $STUDY/latent-cache.safetensors --lr 1e-4" ;;
        synthesis-3e-4) echo "--train-parts synthesis --cache-crops 2 --latent-cache $STUDY/latent-cache.safetensors --lr 3e-4" ;;
        # Less gradient noise per step: four times the batch at the rate batch 8 barely bears.
        synthesis-b32-3e-5) echo "--train-parts synthesis --cache-crops 2 --latent-cache $STUDY/latent-cache.safetensors --batch-size 32 --lr 3e-5" ;;
        # The same batch at a rate that costs batch 8 ground (1e-4): the learning rate per crop of 2.5e-5 at batch 8.
        synthesis-b32-1e-4) echo "--train-parts synthesis --cache-crops 2 --latent-cache $STUDY/latent-cache.safetensors --batch-size 32 --lr 1e-4" ;;
        # Crops leaning towards sharp edges (the best of 4 positions), where v1 loses most.
        edges) echo "--crop-candidates 4" ;;
        synthesis-edges-1e-4) echo "--train-parts synthesis --cache-crops 2 --crop-candidates 4 --latent-cache $STUDY/latent-cache-edges.safetensors --lr 1e-4" ;;
        synthesis-edges-b32-3e-5) echo "--train-parts synthesis --cache-crops 2 --crop-candidates 4 --latent-cache $STUDY/latent-cache-edges.safetensors --batch-size 32 --lr 3e-5" ;;
        # The same, leaning to pixels on contours instead (texture does not count): what v1's losers hold.
        synthesis-contours-b32-3e-5) echo "--train-parts synthesis --cache-crops 2 --crop-candidates 4 --crop-lean contours --latent-cache $STUDY/latent-cache-contours.safetensors --batch-size 32 --lr 3e-5" ;;
        # A second budget after habit's: its optimiser state kept, or a fresh one (as every phase did).
        second-kept) echo "" ;;                                   # habit's run resumed (see the loop)
        second-fresh) echo "--init-from $STUDY/habit/latest.safetensors" ;;
        *) echo "unknown variant $1" >&2; return 1 ;;
    esac
}

quick_eval() {  # quick_eval WEIGHTS OUT
    [ -f "$2/bd_table.md" ] && return 0
    "$DCAE" eval "$HELD" --model "$1" --codecs "" --anchors "$STUDY/classic" --bpp-range 0.1 1.0 \
        --jobs 1 --threads 1 --out "$2" > /dev/null
}

mkdir -p "$STUDY"
if [ ! -d "$HELD" ]; then
    python - "$DATA" "$HOLDOUT" "$HELD" <<'EOF'
import os, sys
from dcae.training import split_holdout
_, held = split_holdout(sys.argv[1], int(sys.argv[2]))
os.makedirs(sys.argv[3])
for path in held:
    os.symlink(os.path.abspath(path), os.path.join(sys.argv[3], path.name))
EOF
fi
[ -f "$STUDY/classic/avif-444.json" ] || "$DCAE" eval "$HELD" --model none --codecs avif,webp --jobs 1 \
    --out "$STUDY/classic" > /dev/null
quick_eval "$START" "$STUDY/start"

for name in "${VARIANTS[@]}"; do
    read -r -a flags <<< "$(variant_flags "$name")"
    run="$STUDY/$name"
    budget=$BUDGET
    if [ "$name" = second-kept ]; then
        budget=$((BUDGET * 2))
        [ -d "$run" ] || { mkdir "$run" && cp "$STUDY"/habit/latest.* "$STUDY"/habit/log.csv "$run"/; }
    fi
    resume=()
    [ -f "$run/latest.safetensors" ] && resume=(--resume)
    echo "== $name: ${flags[*]:-(shared recipe)}"
    "$DCAE" train "${common[@]}" --cpu-budget-minutes "$budget" "${flags[@]}" --out "$run" "${resume[@]}" \
        2> "$run.train.log" || {
        tail -n 5 "$run.train.log" >&2; exit 1; }
    # A run stopped early (a signal, the session's end) is resumed by the next call, not measured.
    python - "$run/latest.json" "$budget" <<'EOF' || exit 1
import json, sys
spent = json.load(open(sys.argv[1]))["cpu_seconds"] / 60
if spent < float(sys.argv[2]) - 0.1:
    sys.exit(f"stopped after {spent:.1f} of {sys.argv[2]} CPU minutes; run the study again to resume it")
EOF
    weights="$run/latest.safetensors"
    [ -f "$run/ema.safetensors" ] && weights="$run/ema.safetensors"
    quick_eval "$weights" "$run/eval"
    echo "== $name done: $(grep -c . "$run/log.csv") log rows"
done
