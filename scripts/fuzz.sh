#!/usr/bin/env bash
# Coverage-guided fuzzing of every file reader (`make fuzz`): builds jukebox-fuzz with libFuzzer
# and the address sanitizer, makes seed corpora from valid files, runs each target in turn and
# prints one summary line per target. Exits non-zero when a target crashed, hung or ran out of
# memory; the input that did it is in fuzz/artifacts/TARGET/ (replay it with
# `.build/release/jukebox-fuzz TARGET FILE`; once fixed, add it to
# Tests/JukeboxKitTests/Fixtures/fuzz-crashes/TARGET/).
#
# Settings (environment or make variables):
#   FUZZ_TARGETS   targets to run, in order (default: all; `jukebox-fuzz --list`)
#   FUZZ_SECONDS   time limit per target in seconds (default 60; 0: none)
#   FUZZ_RUNS      execution limit per target (default -1: none); the first limit reached ends it
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a hang (default 10)
#   FUZZ_RSS_MB    memory limit in MB; a single larger allocation is a finding too (default 2048)
#   FUZZ_DIR       working folder: seeds, corpora, artifacts, logs (default fuzz, git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_RUNS=${FUZZ_RUNS:--1}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
FUZZ_DIR=${FUZZ_DIR:-fuzz}
BUILD=.build/fuzz
FUZZER=$BUILD/jukebox-fuzz
JUKEBOX=.build/release/jukebox
REPLAY=.build/release/jukebox-fuzz

# 1. The ordinary tools (seed making, replay) and the fuzzer. SwiftPM compiles the modules with
# the sanitizers in a build folder of their own; the link is done here, because SwiftPM renames
# an executable's entry point to `<module>_main`, which would displace libFuzzer's `main`.
echo "fuzz: building"
$SWIFT build -c release --product jukebox
$SWIFT build -c release --product jukebox-fuzz
$SWIFT build -c release --build-path "$BUILD" --target JukeboxFuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -D -Xswiftc FUZZING
# The objects of each module's current sources only: a file moved to another module leaves
# its old object behind in the build folder.
objects=()
for module in TensorCore TorchCheckpoint AudioDSP HalfKernels ModelKit JukeboxKit MIDI MelodyKit FuzzTargets JukeboxFuzz; do
    while read -r source; do
        objects+=("$BUILD/release/$module.build/$(basename "$source").o")
    done < "$BUILD/release/$module.build/sources"
done
swiftc -sanitize=fuzzer,address "${objects[@]}" -o "$FUZZER" 2> >(grep -v "Cannot export local symbol" >&2)
[[ -n ${FUZZ_TARGETS:-} ]] || FUZZ_TARGETS=$("$REPLAY" --list | tr '\n' ' ')

# 2. Seeds: valid files of every kind, made once. The checkpoints come from tiny models
# trained for two steps on a synthetic chord, so nothing here derives from real music.
seeds=$FUZZ_DIR/seeds
if [[ ! -f $seeds/.complete ]]; then
    echo "fuzz: making seed corpora in $seeds"
    rm -rf "$seeds"
    work=$FUZZ_DIR/models
    rm -rf "$work"
    mkdir -p "$work" "$seeds"/{safetensors,code-file,checkpoint,bundle,vqvae-config,prior-config,labels-json,labels-csv}
    "$REPLAY" --audio-seeds "$seeds/audio"
    "$REPLAY" --training-audio "$work/chord.wav"
    quiet() { "$@" > "$work/log.txt" 2>&1 || { cat "$work/log.txt" >&2; exit 1; }; }
    quiet "$JUKEBOX" train vqvae --config configs/vqvae-tiny.json --data "$work/chord.wav" --out "$work/vqvae" --steps 2
    vqvae=$work/vqvae/checkpoint.safetensors
    quiet "$JUKEBOX" train prior --config configs/prior-tiny.json --vqvae "$vqvae" --level 2 \
        --data "$work/chord.wav" --out "$work/prior" --steps 2
    for level in 1 0; do
        quiet "$JUKEBOX" train prior --config configs/upsampler-tiny.json --vqvae "$vqvae" --level $level \
            --data "$work/chord.wav" --out "$work/up$level" --steps 2
    done
    quiet "$JUKEBOX" bundle --vqvae "$vqvae" --prior "$work/prior/checkpoint.safetensors" \
        --upsampler "$work/up1/checkpoint.safetensors" --upsampler "$work/up0/checkpoint.safetensors" \
        --half -o "$work/bundle"
    quiet "$JUKEBOX" encode --vqvae "$vqvae" "$work/chord.wav" -o "$work/chord.codes.safetensors"

    cp "$work/chord.codes.safetensors" "$seeds/code-file/"
    cp "$work/chord.codes.safetensors" "$seeds/safetensors/"
    # The bundle's inference checkpoints (F16, no optimizer state) are the smallest: a seed's
    # size sets the cost of every execution mutated from it.
    for file in "$work"/bundle/*.safetensors; do cp "$file" "$seeds/checkpoint/bundle-$(basename "$file")"; done
    cp "$work/bundle/bundle.json" "$seeds/bundle/"
    cp configs/vqvae-*.json "$seeds/vqvae-config/"
    cp configs/prior-*.json configs/upsampler-*.json "$seeds/prior-config/"
    cat > "$seeds/labels-json/labels.json" <<'EOF'
{"song.wav": {"artist": "Some Band", "genre": "rock"},
 "data/other/take 2.flac": {"artist": "Ünïcode Ørchestra", "genre": ["jazz", "blues"]},
 "x.ogg": {"genres": ["ambient"]}}
EOF
    printf 'path,artist,genre\nsong.wav,Some Band,rock;pop\n"quoted.ogg",Other,\ndata/a.flac,  Spaced Name  ,jazz\n' \
        > "$seeds/labels-csv/labels.csv"
    printf 'file,genres,artist\nx.wav,ambient;drone,someone\ny.wav,,\n' > "$seeds/labels-csv/reordered.csv"
    # Dictionaries: the quoted words of the JSON seeds and safetensors headers, so that mutations
    # spell keys, dtypes and metadata names instead of waiting to guess them.
    for target in safetensors code-file checkpoint bundle vqvae-config prior-config labels-json; do
        LC_ALL=C grep -aoh '"[A-Za-z0-9_]\{1,40\}"' "$seeds/$target"/* | sort -u | sed 's/"/\\"/g; s/.*/"&"/' \
            > "$seeds/$target.dict"
    done
    touch "$seeds/.complete"
fi

# Seeds of the melody readers (added later, so made on their own): hand-written MIDI files (a
# format-0 tune with an accented downbeat and running status, a format-1 file with a tempo
# track), the melody configs, and a latent file and checkpoint of a tiny melody VAE trained for
# two steps on them.
if [[ ! -f $seeds/.melody-complete ]]; then
    echo "fuzz: making melody seed corpora in $seeds"
    work=$FUZZ_DIR/melody-models
    rm -rf "$work" "$seeds"/{midi,melody-vae-config,melody-latents}
    mkdir -p "$work/data/train" "$seeds"/{midi,melody-vae-config,melody-latents,checkpoint}
    notes='\x00\xff\x58\x04\x04\x02\x18\x08\x00\x90\x3c\x69\x83\x60\x80\x3c\x00\x00\x90\x3e\x5f\x9a\x20\x3e\x00'
    printf "MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk\x00\x00\x00\x1d$notes\x00\xff\x2f\x00" > "$seeds/midi/format0.mid"
    printf "MThd\x00\x00\x00\x06\x00\x01\x00\x02\x00\x60MTrk\x00\x00\x00\x0b\x00\xff\x51\x03\x07\xa1\x20\x00\xff\x2f\x00MTrk\x00\x00\x00\x1d$notes\x00\xff\x2f\x00" \
        > "$seeds/midi/format1.mid"
    for i in 1 2 3; do cp "$seeds/midi/format0.mid" "$work/data/train/tune$i.mid"; done
    quiet() { "$@" > "$work/log.txt" 2>&1 || { cat "$work/log.txt" >&2; exit 1; }; }
    quiet "$JUKEBOX" train melody-vae --config configs/melody-vae-tiny.json --data "$work/data" --out "$work/vae" --steps 2
    quiet "$JUKEBOX" melody encode --vae "$work/vae/checkpoint.safetensors" "$seeds/midi/format0.mid" -o "$seeds/melody-latents/tune.latents.safetensors"
    cp "$work/vae/checkpoint.safetensors" "$seeds/checkpoint/melody-vae.safetensors"
    cp configs/melody-vae-*.json "$seeds/melody-vae-config/"
    for target in melody-vae-config melody-latents; do
        LC_ALL=C grep -aoh '"[A-Za-z0-9_]\{1,40\}"' "$seeds/$target"/* | sort -u | sed 's/"/\\"/g; s/.*/"&"/' \
            > "$seeds/$target.dict"
    done
    touch "$seeds/.melody-complete"
fi

# Seeds of the PyTorch checkpoint reader (added later, so made on their own): the fixtures that
# torch wrote (scripts/make-torch-fixtures.py), legacy and zip, and a dictionary of the pickle's
# globals and the zip's names.
if [[ ! -f $seeds/.torch-complete ]]; then
    echo "fuzz: making PyTorch checkpoint seeds in $seeds"
    rm -rf "$seeds/torch-checkpoint"
    mkdir -p "$seeds/torch-checkpoint"
    cp Tests/TorchCheckpointTests/Fixtures/*.pth.tar "$seeds/torch-checkpoint/"
    printf '%s\n' '"ctorch._utils\x0a_rebuild_tensor_v2\x0a"' '"ccollections\x0aOrderedDict\x0a"' \
        '"ctorch\x0aHalfStorage\x0a"' '"ctorch\x0aFloatStorage\x0a"' '"storage"' '"/data.pkl"' '"/data/"' \
        '"PK\x03\x04"' '"PK\x01\x02"' '"PK\x05\x06"' '"PK\x06\x06"' '"PK\x06\x07"' '"\xff\xff\xff\xff"' \
        > "$seeds/torch-checkpoint.dict"
    touch "$seeds/.torch-complete"
fi

# 3. Each target in turn, on one core: its growing corpus, then the seeds. Allocation stacks are
# not recorded (malloc_context_size=0): the checkpoint target spent a third of its time on them,
# and a finding is replayed with `jukebox-fuzz` anyway; bounds checks are unchanged.
failed=0
summary=()
for target in $FUZZ_TARGETS; do
    corpus=$FUZZ_DIR/corpus/$target
    artifacts=$FUZZ_DIR/artifacts/$target
    log=$FUZZ_DIR/logs/$target.log
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    dict=()
    [[ -f $seeds/$target.dict ]] && dict=(-dict="$seeds/$target.dict")
    echo "fuzz: $target (log $log)"
    count() { ls "$artifacts" | grep -c -E "^($1)-" || true; }
    crashes_before=$(count 'crash|oom|leak') hangs_before=$(count 'timeout|slow-unit')
    touch "$artifacts/.start"
    status=0
    JUKEBOX_FUZZ_TARGET=$target JUKEBOX_FUZZ_BUNDLE_MODELS=$FUZZ_DIR/models/bundle \
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:malloc_context_size=0} \
        "$FUZZER" "$corpus" "$seeds/$target" "${dict[@]}" \
        -runs="$FUZZ_RUNS" -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" \
        -rss_limit_mb="$FUZZ_RSS_MB" -artifact_prefix="$artifacts/" -print_final_stats=1 \
        > "$log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
    coverage=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' "$log" | tail -1 || true)
    crashes=$(( $(count 'crash|oom|leak') - crashes_before )) hangs=$(( $(count 'timeout|slow-unit') - hangs_before ))
    found=$(find "$artifacts" -type f -newer "$artifacts/.start" ! -name .start)
    line=$(printf '%-13s %9s runs %7s exec/s  %-26s crashes %s  hangs %s' "$target" "$runs" "$speed" "$coverage" "$crashes" "$hangs")
    if (( status != 0 )) && (( crashes + hangs == 0 )); then line+="  (fuzzer exited with status $status; see $log)"; fi
    (( status == 0 && crashes + hangs == 0 )) || failed=1
    summary+=("$line")
    echo "fuzz: $line"
    [[ -z $found ]] || echo "$found" | sed 's/^/fuzz:   found /'
done

echo
echo "fuzz: summary ($FUZZ_RUNS runs, ${FUZZ_SECONDS} s per target at most; -1 / 0: no limit)"
printf 'fuzz: %s\n' "${summary[@]}"
exit $failed
