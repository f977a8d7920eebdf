#!/usr/bin/env bash
# The melody model's evaluation as the paper reports it (README: melodies), written to one
# report: unconditional samples by DDPM over every step and by DDIM at 100, 50 and 20 steps (and
# by a TransformerMDN model when given), then infilling of bars 5-12 of the test tunes by the
# model and by latent interpolation, each scored by `jukebox eval melody` against the test split
# (framewise Consistency and Variance beside the two baselines made from the reference, and the
# latent distances under the model's VAE). Timings come from the commands' own last lines.
#
# Usage: scripts/melody-eval.sh [MODEL] [OUT]
#   MODEL   melody model folder (default models/melody)
#   OUT     folder for the samples and report.txt (default out/melody-eval)
# Settings (environment):
#   MDN_MODEL   a melody model folder whose prior is a TransformerMDN, scored beside it
#   TEST        reference MIDI (default data/melody/test; make melody-data)
#   COUNT       melodies per sampler (default 200)   BARS   bars per melody (default 16)
#   INFILL      bars to infill (default 5-12)          SEED   seed (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${1:-models/melody}
OUT=${2:-out/melody-eval}
TEST=${TEST:-data/melody/test}
COUNT=${COUNT:-200}
BARS=${BARS:-16}
INFILL=${INFILL:-5-12}
SEED=${SEED:-1}
JUKEBOX=${JUKEBOX:-.build/release/jukebox}

[[ -x $JUKEBOX ]] || { echo "melody-eval: $JUKEBOX is not built (make build)" >&2; exit 1; }
[[ -d $TEST ]] || { echo "melody-eval: no reference folder $TEST (make melody-data)" >&2; exit 1; }
mkdir -p "$OUT"
report=$OUT/report.txt
: > "$report"
say() { echo "$@" | tee -a "$report"; }

# One generated set: make it (the command's last stderr line has its time), then score it.
score() {
    local name=$1; shift
    local folder=$OUT/$name
    rm -rf "$folder"
    say ""
    say "== $name: $*"
    "$@" 2> "$OUT/$name.log" || { cat "$OUT/$name.log" >&2; exit 1; }
    say "   $(tail -1 "$OUT/$name.log")"
    "$JUKEBOX" eval melody --generated "$folder" --reference "$TEST" --model "$MODEL" --bars "$BARS" --seed "$SEED" \
        2>> "$OUT/$name.log" | sed 's/^/   /' | tee -a "$report"
}

say "melody evaluation of $MODEL against $TEST: $COUNT melodies of $BARS bars per sampler, seed $SEED ($(date -u +%F))"
score ddpm-1000 "$JUKEBOX" melody sample --model "$MODEL" --count "$COUNT" --bars "$BARS" --seed "$SEED" --out-dir "$OUT/ddpm-1000"
for steps in 100 50 20; do
    score "ddim-$steps" "$JUKEBOX" melody sample --model "$MODEL" --count "$COUNT" --bars "$BARS" --sampler ddim --steps "$steps" \
        --seed "$SEED" --out-dir "$OUT/ddim-$steps"
done
if [[ -n ${MDN_MODEL:-} ]]; then
    score mdn "$JUKEBOX" melody sample --model "$MDN_MODEL" --count "$COUNT" --bars "$BARS" --seed "$SEED" --out-dir "$OUT/mdn"
fi

# Infilling: the generated bars against the true ones (the same tunes, cut to the same bars).
for method in prior interpolate; do
    name=infill-$method
    rm -rf "$OUT/$name"
    say ""
    say "== $name: bars $INFILL of the test tunes with $BARS bars or more"
    "$JUKEBOX" melody infill --model "$MODEL" "$TEST" --bars "$INFILL" --method "$method" --seed "$SEED" --out-dir "$OUT/$name" \
        2> "$OUT/$name.log" || { cat "$OUT/$name.log" >&2; exit 1; }
    say "   $(tail -1 "$OUT/$name.log")"
    for bars in "$BARS" "$INFILL"; do
        say "   scored on bars $bars:"
        "$JUKEBOX" eval melody --generated "$OUT/$name" --reference "$TEST" --model "$MODEL" --bars "$bars" --seed "$SEED" \
            2>> "$OUT/$name.log" | sed 's/^/     /' | tee -a "$report"
    done
done
say ""
say "melody-eval: report in $report"
