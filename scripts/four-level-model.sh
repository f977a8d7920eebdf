#!/bin/sh
# The four-level experiment of issue 12 (not the shipped model: see scripts/default-model.sh).
# Trains a four-level model from scratch and assembles it in $OUT (default models/four-level):
#   1. installs the training music (scripts/training-music.sh: 110 tracks, 4.9 h, from Debian's
#      game-music packages) and the two soundtracks the first three VQ-VAE levels learned from,
#   2. trains the small VQ-VAE (levels 0-2, hops 8/32/128) on singularity-music and
#      hyperrogue-music, then extends it by level 3 (hop 512) trained on all the music,
#   3. encodes the music once, 4. trains the priors side by side, one thread each: the top
#      prior over level 3 and the level-2 upsampler on all the music, the level-1 and level-0
#      upsamplers on the two soundtracks (as first shipped; they stay valid for the extended
#      VQ-VAE), 5. bundles them with F16 weights.
# Every stage resumes where it stopped (--resume), so rerunning after an interruption continues
# instead of starting over; a finished stage is skipped. The priors' progress goes to
# $RUNS/<name>.log. Takes about 8 hours on 2 cores.
#
# Settings (environment): RUNS (run folders, default runs/four-level), OUT (bundle folder,
# default models/four-level), SEED, and step budgets VQVAE_STEPS, VQVAE3_STEPS, PRIOR_STEPS,
# UPSAMPLER2_STEPS, UPSAMPLER1_STEPS, UPSAMPLER0_STEPS.
set -eu
cd "$(dirname "$0")/.."

RUNS=${RUNS:-runs/four-level}
OUT=${OUT:-models/four-level}
SEED=${SEED:-1}
VQVAE_STEPS=${VQVAE_STEPS:-2250}
VQVAE3_STEPS=${VQVAE3_STEPS:-2500}
PRIOR_STEPS=${PRIOR_STEPS:-2500}
UPSAMPLER2_STEPS=${UPSAMPLER2_STEPS:-2500}
UPSAMPLER1_STEPS=${UPSAMPLER1_STEPS:-1750}
UPSAMPLER0_STEPS=${UPSAMPLER0_STEPS:-1750}
NAME=four-level-model

# 1. Data: the two soundtracks (with the build, labels and stage helpers), then all the music.
. scripts/model-recipe.sh
scripts/training-music.sh "$RUNS/music"
MUSIC="$RUNS/music/train.txt"

# 2. VQ-VAE: levels 0-2 on the two soundtracks, then level 3 on all the music.
train vqvae "$RUNS/vqvae" "$VQVAE_STEPS" --config configs/vqvae-small.json --data "$SINGULARITY" "$HYPERROGUE"
VQVAE3="$RUNS/vqvae/checkpoint.safetensors"
if [ -f "$RUNS/vqvae4/checkpoint.safetensors" ]; then extend=""; else extend="--extend $VQVAE3"; fi
train vqvae "$RUNS/vqvae4" "$VQVAE3_STEPS" --config configs/vqvae-small-4level.json --data "$MUSIC" $extend
VQVAE="$RUNS/vqvae4/checkpoint.safetensors"

# 3. Codes, once (skipped when up to date): levels 0-1 of the soundtracks for the lower
# upsamplers, levels 2-3 of all the music for the top prior and the level-2 upsampler.
"$BIN" encode --vqvae "$VQVAE3" $(find "$SINGULARITY" "$HYPERROGUE" -name '*.ogg' | sort | tr '\n' ' ') --out-dir "$RUNS/codes"
"$BIN" encode --vqvae "$VQVAE" --levels 2,3 $(cat "$MUSIC" | tr '\n' ' ') --out-dir "$RUNS/codes4"

# 4. Priors, side by side, one thread each; each logs to $RUNS/<name>.log.
JUKEBOX_THREADS=1
export JUKEBOX_THREADS
train prior "$RUNS/prior3" "$PRIOR_STEPS" --config configs/prior-small-hop512.json --vqvae "$VQVAE" --level 3 \
    --data "$RUNS/codes4" --labels "$RUNS/music/labels.csv" > "$RUNS/prior3.log" 2>&1 &
p3=$!
train prior "$RUNS/upsampler2" "$UPSAMPLER2_STEPS" --config configs/upsampler-small-level2.json --vqvae "$VQVAE" --level 2 \
    --data "$RUNS/codes4" --labels "$RUNS/music/labels.csv" > "$RUNS/upsampler2.log" 2>&1 &
p2=$!
wait $p3 || { say "the top prior failed (see $RUNS/prior3.log); rerun to resume"; exit 1; }
wait $p2 || { say "the level-2 upsampler failed (see $RUNS/upsampler2.log); rerun to resume"; exit 1; }
train prior "$RUNS/upsampler1" "$UPSAMPLER1_STEPS" --config configs/upsampler-small.json --vqvae "$VQVAE3" --level 1 \
    --data "$RUNS/codes" --labels "$LABELS" > "$RUNS/upsampler1.log" 2>&1 &
p1=$!
train prior "$RUNS/upsampler0" "$UPSAMPLER0_STEPS" --config configs/upsampler-small.json --vqvae "$VQVAE3" --level 0 \
    --data "$RUNS/codes" --labels "$LABELS" --hop-fraction 0.125 > "$RUNS/upsampler0.log" 2>&1 &
p0=$!
failed=""
wait $p1 || failed="$failed upsampler1"
wait $p0 || failed="$failed upsampler0"
if [ -n "$failed" ]; then
    say "training failed for:$failed (see $RUNS/<name>.log); rerun to resume"
    exit 1
fi

# 5. Bundle.
publish_bundle "$OUT" --vqvae "$VQVAE" --prior "$RUNS/prior3/checkpoint.safetensors" \
    --upsampler "$RUNS/upsampler2/checkpoint.safetensors" --upsampler "$RUNS/upsampler1/checkpoint.safetensors" \
    --upsampler "$RUNS/upsampler0/checkpoint.safetensors" --half --artist "Max McCracken"
