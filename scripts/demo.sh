#!/bin/sh
# `make demo`: the main job of jukebox on a fresh machine.
set -eu
cd "$(dirname "$0")/.."
BIN=.build/release/jukebox
echo "jukebox demo: no trained models are shipped yet, so this runs the smallest real thing the"
echo "tool can do today: its kernel benchmark against raw OpenBLAS sgemm."
start=$(date +%s)
"$BIN" bench ops
echo "jukebox demo: done in $(( $(date +%s) - start )) s"
