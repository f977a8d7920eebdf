# Sourced (not run) by scripts/default-model.sh and scripts/four-level-model.sh: what both
# recipes share. Installs the two soundtracks the first three VQ-VAE levels learn from, builds
# jukebox, writes their artist labels to $LABELS, and defines training stages that resume or
# skip and a bundle step that never leaves a half-written bundle. Needs RUNS, SEED and NAME
# (the prefix of messages) set.
BIN=.build/release/jukebox
SINGULARITY=/usr/share/games/singularity/music
HYPERROGUE=/usr/share/hyperrogue/music

say() { echo "$NAME: $*" >&2; }

if [ ! -d "$SINGULARITY" ] || [ ! -d "$HYPERROGUE" ]; then
    say "installing the training data (singularity-music, hyperrogue-music)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq singularity-music hyperrogue-music >/dev/null
fi
make -s build
mkdir -p "$RUNS"

# Artist labels from the packages' copyright files: one composer per track.
LABELS="$RUNS/labels.csv"
{
    echo "path,artist"
    find "$SINGULARITY" -name '*.ogg' | sort | sed 's/$/,Max McCracken/'
    find "$HYPERROGUE" -name 'hr3-*.ogg' | sort | sed 's/$/,Shawn Parrotte/'
    find "$HYPERROGUE" -name 'hr-domina-*.ogg' | sort | sed 's/$/,Lincoln Domina/'
    find "$HYPERROGUE" -name 'hr-savino-*.ogg' | sort | sed 's/$/,Will Savino/'
} > "$LABELS"

# Step of the checkpoint in a run folder (0 when there is none).
step_of() {
    if [ -f "$1/checkpoint.safetensors" ]; then
        "$BIN" info "$1/checkpoint.safetensors" | sed -n 's/.* step \([0-9]*\)$/\1/p'
    else
        echo 0
    fi
}

# train KIND RUN STEPS ARGS...: runs or resumes a training stage unless it is done.
train() {
    kind=$1; run=$2; steps=$3; shift 3
    done_steps=$(step_of "$run")
    if [ "$done_steps" -ge "$steps" ]; then
        say "$run: done ($done_steps steps)"
        return
    fi
    resume=""
    [ -f "$run/checkpoint.safetensors" ] && resume=--resume
    say "$run: training $kind to step $steps${resume:+ (resuming at $done_steps)}"
    "$BIN" train "$kind" "$@" --out "$run" --steps "$steps" --seed "$SEED" $resume
}

# publish_bundle OUT BUNDLE-ARGS...: assembles the bundle beside OUT, then moves it in, so a
# failure leaves the old bundle whole (a model card in OUT stays).
publish_bundle() {
    out=$1; shift
    rm -rf "$out.tmp"
    "$BIN" bundle "$@" -o "$out.tmp"
    mkdir -p "$out"
    mv -f "$out.tmp"/* "$out"/
    rmdir "$out.tmp"
    say "bundle written to $out ($(du -sh "$out" | cut -f1))"
}
