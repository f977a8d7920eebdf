#!/bin/sh
# `make demo`: generates 10 seconds of music with the shipped model (models/default).
set -eu
cd "$(dirname "$0")/.."
BIN=.build/release/jukebox
MODEL=models/default
mkdir -p out
start=$(date +%s)
if [ ! -f "$MODEL/bundle.json" ]; then
    echo "jukebox demo: $MODEL is missing, so there is no model to sample; running the kernel"
    echo "benchmark instead (train the model with 'make default-model')."
    "$BIN" bench ops
    exit 0
fi
echo "jukebox demo: sampling 10 s of music with $MODEL (the top prior, then each upsampler, then the decoder)"
"$BIN" sample --model "$MODEL" --seconds 10 --seed 1 -o out/demo.wav
echo "jukebox demo: wrote $(pwd)/out/demo.wav in $(( $(date +%s) - start )) s"
