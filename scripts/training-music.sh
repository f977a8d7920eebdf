#!/bin/sh
# Installs the freely licensed game music the default model trains on, and lists it.
#
#   scripts/training-music.sh DIR
#
# writes DIR/train.txt (one audio file per line, for `--data`), DIR/labels.csv (path,artist:
# the composer where the package's copyright file names one) and DIR/sources.tsv (file,
# package, licence, composer, original path). The files are links in DIR/music named
# PACKAGE--NAME.ogg, so every track has a name of its own (code files and the train/held-out
# split go by file name; four of the songs are called song.ogg). Only music whose licence lets the model be shared under
# CC-BY-SA-3.0 is listed: CC-BY-SA-3.0, CC-BY-3.0, public domain and Drascula's BSD-like
# licence. GPL-licensed tracks in the same packages are left out, as are wesnoth-music and
# warzone2100-music, which are kept for evaluation. UFO: Alien Invasion's music ships inside a
# zip archive; it is unpacked into DIR/ufoai. Nothing here is committed: the script fetches it.
set -eu
DIR=${1:?usage: scripts/training-music.sh DIR}
PACKAGES="singularity-music hyperrogue-music ufoai-music drascula-music fretsonfire-songs-muldjord unzip"

missing=""
for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    echo "training-music: installing$missing" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
mkdir -p "$DIR/ufoai"
DIR=$(cd "$DIR" && pwd)   # links need absolute targets
PK3=$(dpkg -L ufoai-music | grep '\.pk3$' | head -n 1)
[ -d "$DIR/ufoai/music" ] || unzip -q -o "$PK3" 'music/*' -d "$DIR/ufoai"

TSV="$DIR/sources.tsv"
mkdir -p "$DIR/music"
printf 'file\tpackage\tlicence\tcomposer\toriginal\n' > "$TSV.tmp"
# row ORIGINAL PACKAGE LICENCE COMPOSER [NAME]: links DIR/music/PACKAGE--NAME.ogg to the file.
row() {
    name=${5:-$(basename "$1" .ogg)}
    link="$DIR/music/$2--$(echo "$name" | tr ' ' '_').ogg"
    ln -sfn "$1" "$link"
    printf '%s\t%s\t%s\t%s\t%s\n' "$link" "$2" "$3" "$4" "$1" >> "$TSV.tmp"
}

for f in $(find /usr/share/games/singularity/music -name '*.ogg' | sort | tr ' ' '\001'); do
    row "$(echo "$f" | tr '\001' ' ')" singularity-music CC-BY-SA-3.0 "Max McCracken"
done
for f in $(find /usr/share/hyperrogue/music -name '*.ogg' | sort); do
    case $(basename "$f") in
        hr3-*) who="Shawn Parrotte" ;; hr-domina-*) who="Lincoln Domina" ;; hr-savino-*) who="Will Savino" ;; *) continue ;;
    esac
    row "$f" hyperrogue-music CC-BY-SA-3.0 "$who"
done
# UFO:AI: the licence of each track from the package's machine-readable copyright file.
awk '/^Files:/ { infiles = 1; n = 0; next }
     infiles && /^ base\/music\// { sub(/^ base\/music\//, ""); files[n++] = $1; next }
     /^[A-Z][a-z]*:/ && !/^Files:/ { infiles = 0 }
     /^License:/ { for (i = 0; i < n; i++) print files[i] "\t" $2; n = 0 }' \
    /usr/share/doc/ufoai-music/copyright | while IFS="$(printf '\t')" read -r name licence; do
    case $licence in CC-BY-3.0|CC-BY-SA-3.0|public-domain) ;; *) continue ;; esac
    case $name in
        Crystan-*) who="Crystan" ;; Marine*) who="Marine Baklund" ;; David*) who="David Reeves" ;;
        van_*) who="Manuel Marino" ;; karlmacklin_*) who="Karl Macklin" ;; azrael*) who="azrael1322" ;;
        *) who="UFO:AI team" ;;
    esac
    [ -f "$DIR/ufoai/music/$name" ] && row "$DIR/ufoai/music/$name" ufoai-music "$licence" "$who"
done
for f in $(find /usr/share/scummvm/drascula/audio -name '*.ogg' | sort); do
    row "$f" drascula-music Drascula-BSD-like "Alcachofa Soft"
done
for f in $(find /usr/share/games/fretsonfire/data/songs/muldjord -name song.ogg | sort); do
    row "$f" fretsonfire-songs-muldjord CC-BY-SA-3.0 "Muldjord" "$(basename "$(dirname "$f")")"
done
mv "$TSV.tmp" "$TSV"

tail -n +2 "$TSV" | cut -f1 > "$DIR/train.txt"
{ echo "path,artist"; tail -n +2 "$TSV" | awk -F '\t' '{ print $1 "," $4 }'; } > "$DIR/labels.csv"
echo "training-music: $(wc -l < "$DIR/train.txt") files listed in $DIR/train.txt" >&2
