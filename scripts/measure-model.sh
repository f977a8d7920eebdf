#!/bin/sh
# Listens to a model bundle by measurement, against real music:
#
#   scripts/measure-model.sh MODEL OUT REAL.codes.safetensors...
#
# 1. samples N pieces of SAMPLE_SECONDS each (seeds 1..N) as code files and decodes them to WAVs,
# 2. compares the code statistics of their top level with those of the real code files (from
#    `jukebox encode` with MODEL's VQ-VAE) over segments of the same length (`eval codes`),
# 3. measures the audio (`eval audio`: harmonic share, beat strength, chroma repetition),
# 4. with PRIME=FILE, continues its first PRIME_SECONDS and measures every 5 s of the result
#    (does the continuation keep the prime's beat and harmonic lines?).
# Results go to OUT/*.txt; a rerun redoes only missing samples. Settings (environment): N (8),
# SAMPLE_SECONDS (20), PRIME, PRIME_SECONDS (5), BIN (.build/release/jukebox).
set -eu
MODEL=${1:?usage: scripts/measure-model.sh MODEL OUT REAL.codes.safetensors...}
OUT=${2:?usage: scripts/measure-model.sh MODEL OUT REAL.codes.safetensors...}
shift 2
N=${N:-8}
SECONDS_EACH=${SAMPLE_SECONDS:-20}
PRIME=${PRIME:-}
PRIME_SECONDS=${PRIME_SECONDS:-5}
BIN=${BIN:-.build/release/jukebox}
mkdir -p "$OUT"

for i in $(seq 1 "$N"); do
    [ -f "$OUT/sample-$i.wav" ] && continue
    resume=""; [ -f "$OUT/sample-$i.codes.safetensors" ] && resume=--resume
    "$BIN" sample --model "$MODEL" --seconds "$SECONDS_EACH" --seed "$i" -o "$OUT/sample-$i.codes.safetensors" $resume
    "$BIN" decode --vqvae "$MODEL/vqvae.safetensors" "$OUT/sample-$i.codes.safetensors" --level 0 -o "$OUT/sample-$i.wav"
done
TOP=$(sed -n 's/.*"\([0-9]*\)" : "prior-level.*/\1/p' "$MODEL/bundle.json")
{
    echo "# top-level (level $TOP) code statistics over $SECONDS_EACH s segments: samples"
    "$BIN" eval codes --level "$TOP" --seconds "$SECONDS_EACH" "$OUT"/sample-*.codes.safetensors
    if [ $# -gt 0 ]; then
        echo "# real music"
        "$BIN" eval codes --level "$TOP" --seconds "$SECONDS_EACH" "$@"
    fi
} | tee "$OUT/codes.txt"
"$BIN" eval audio "$OUT"/sample-*.wav | tee "$OUT/audio.txt"
if [ -n "$PRIME" ]; then
    name=$(basename "$PRIME" | sed 's/\.[^.]*$//')
    [ -f "$OUT/continue-$name.wav" ] || "$BIN" sample --model "$MODEL" --seconds "$SECONDS_EACH" --seed 1 --prime "$PRIME" \
        --prime-seconds "$PRIME_SECONDS" -o "$OUT/continue-$name.wav"
    {
        echo "# the prime itself, then the continuation, per 5 s"
        "$BIN" eval audio --segment 5 "$PRIME" | head -n "$(( (SECONDS_EACH + 4) / 5 ))"
        "$BIN" eval audio --segment 5 "$OUT/continue-$name.wav"
    } | tee "$OUT/continuation.txt"
fi
