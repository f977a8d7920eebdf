#!/bin/sh
# Trains the shipped default model from scratch and assembles models/default:
#   1. installs the training data (Debian packages singularity-music and hyperrogue-music),
#   2. trains the small VQ-VAE, 3. encodes all music once, 4. trains the top prior and the two
#   upsamplers side by side (one thread each: on 2 cores three single-threaded trainings make
#   more steps per second together than one after another), 5. bundles them with F16 weights.
# Every stage resumes where it stopped (--resume), so rerunning after an interruption continues
# instead of starting over; a finished stage is skipped. Takes about 4 hours on 2 cores
# (here the VQ-VAE took 2.4 h beside other work, the priors 1.8 h); the priors' progress goes to $RUNS/<name>.log.
#
# Settings (environment): RUNS (run folders, default runs/default), OUT (bundle folder,
# default models/default), SEED, and step budgets VQVAE_STEPS, PRIOR_STEPS, UPSAMPLER1_STEPS,
# UPSAMPLER0_STEPS.
set -eu
cd "$(dirname "$0")/.."

RUNS=${RUNS:-runs/default}
OUT=${OUT:-models/default}
SEED=${SEED:-1}
VQVAE_STEPS=${VQVAE_STEPS:-2250}
PRIOR_STEPS=${PRIOR_STEPS:-1750}
UPSAMPLER1_STEPS=${UPSAMPLER1_STEPS:-1750}
UPSAMPLER0_STEPS=${UPSAMPLER0_STEPS:-1750}
NAME=default-model

# 1. Data, the build, labels, and the stage helpers.
. scripts/model-recipe.sh

# 2. VQ-VAE.
train vqvae "$RUNS/vqvae" "$VQVAE_STEPS" --config configs/vqvae-small.json --data "$SINGULARITY" "$HYPERROGUE"
VQVAE="$RUNS/vqvae/checkpoint.safetensors"

# 3. Codes of every track, once (skipped when up to date).
"$BIN" encode --vqvae "$VQVAE" $(find "$SINGULARITY" "$HYPERROGUE" -name '*.ogg' | sort | tr '\n' ' ') --out-dir "$RUNS/codes"

# 4. Priors, side by side, one thread each; each logs to $RUNS/<name>.log.
JUKEBOX_THREADS=1
export JUKEBOX_THREADS
train prior "$RUNS/prior2" "$PRIOR_STEPS" --config configs/prior-small.json --vqvae "$VQVAE" --level 2 \
    --data "$RUNS/codes" --labels "$LABELS" > "$RUNS/prior2.log" 2>&1 &
p2=$!
train prior "$RUNS/upsampler1" "$UPSAMPLER1_STEPS" --config configs/upsampler-small.json --vqvae "$VQVAE" --level 1 \
    --data "$RUNS/codes" --labels "$LABELS" > "$RUNS/upsampler1.log" 2>&1 &
p1=$!
train prior "$RUNS/upsampler0" "$UPSAMPLER0_STEPS" --config configs/upsampler-small.json --vqvae "$VQVAE" --level 0 \
    --data "$RUNS/codes" --labels "$LABELS" --hop-fraction 0.125 > "$RUNS/upsampler0.log" 2>&1 &
p0=$!
say "training the top prior and both upsamplers side by side; follow them with: tail -f $RUNS/*.log"
failed=""
wait $p2 || failed="$failed prior2"
wait $p1 || failed="$failed upsampler1"
wait $p0 || failed="$failed upsampler0"
if [ -n "$failed" ]; then
    say "training failed for:$failed (see $RUNS/<name>.log); rerun to resume"
    exit 1
fi

# 5. Bundle.
publish_bundle "$OUT" --vqvae "$VQVAE" --prior "$RUNS/prior2/checkpoint.safetensors" \
    --upsampler "$RUNS/upsampler1/checkpoint.safetensors" --upsampler "$RUNS/upsampler0/checkpoint.safetensors" \
    --half --artist "Max McCracken"
