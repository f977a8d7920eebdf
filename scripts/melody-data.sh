#!/bin/sh
# Builds the folk-melody data set for the symbolic melody models (MusicVAE 2-bar melodies,
# Mittal et al. 2021) from the ABC folk-tune collections that ship inside the music21 wheel.
#
#   scripts/melody-data.sh        (or `make melody-data`)
#
# writes data/melody/ (git-ignored; nothing of it may be committed, see LICENCES below):
#   {train,validation,test}/COLLECTION/FILE-X.mid   one MIDI file per tune, from abc2midi
#   tunes.tsv     id, collection, meter, split, file (one row per kept tune)
#   dropped.tsv   id, collection, reason, detail (one row per tune left out)
#   abc2midi-errors.tsv   id, collection, message (abc2midi's error messages on kept tunes)
#   README        where the data comes from, its licences, how it was made, the counts
#   license-corpus.txt, license-essenFolksong.txt   the licence notes from the wheel
#
# Steps:
# 1. pip downloads the pinned music21 wheel (pip is only the downloader: nothing is installed
#    and no Python runs on the data); its sha256 is checked against the one recorded here, so
#    a changed upstream file stops the script. The wheel is kept in data/cache/.
# 2. Only music21/corpus/{essenFolksong,ryansMammoth,airdsAirs,miscFolk}/*.abc are unpacked.
# 3. awk splits each .abc file into tunes. A tune starts at its X: line and, as the ABC
#    standard and abc2midi have it, ends at the first empty line; the file header (the lines
#    before the first X:) is copied in front of every tune, since it may hold defaults. A tune
#    is known by the id COLLECTION/FILE/X (X as written in the file).
# 4. Kept: tunes whose M: is 4/4, C, C|, 2/2 or 2/4 and whose body (M: lines and inline [M:])
#    changes only to one of these. A tune without M: is in free meter by the ABC 2.1 standard
#    and is dropped like M:none and Essen's M:FREI4/4 (no tune of these collections lacks M:).
#    A tune whose notes, key, unit length and meter repeat those of an earlier tune exactly is
#    dropped as a duplicate (the Essen test files copy other tunes, and some tunes appear twice
#    under different names; kept, a copy could land in test and its twin in train).
# 5. Split by tune: the POSIX cksum CRC of the tune id, modulo 100: below 85 train, below 90
#    validation, the rest test. It depends on the id alone, so a tune keeps its split when
#    other tunes come or go.
# 6. abc2midi converts each kept tune. -NFER: a fermata would lengthen its note and move every
#    later bar line off the grid. -NFNP: dynamics (!f!, !mf!) would change note velocities,
#    and the melody reader finds the downbeat from abc2midi's bar accents (the first note of
#    each bar has velocity 105, %%MIDI beat 105 95 80 1). -NGRA, -NGUI: no grace notes and no
#    guitar-chord accompaniment. A tune is dropped when no MIDI file comes out.
# 7. Everything is built in a temporary folder under data/ and renamed into place at the end;
#    a stamp (script version, wheel hash, abc2midi version) makes a rerun a quick no-op.
#
# LICENCES: the music21 software is BSD-licensed, but its corpus is not: corpus/license.txt
# says some encodings "may not be used for commercial uses or have other restrictions", and
# essenFolksong/license.txt says the legal status of the Essen database is unclear, with
# permission (Ewa Dahlig-Turek) for non-commercial distribution and use in music21. Never
# commit these tunes or anything derived from them note for note.
set -eu

SCRIPT_VERSION=2   # bump when the output changes: a rerun then rebuilds
MUSIC21_VERSION=10.5.1
MUSIC21_WHEEL=music21-$MUSIC21_VERSION-py3-none-any.whl
MUSIC21_SHA256=dc3309498c4c95cebdf8d4f20c868deb6b63bce1d929cad4f51a7ccc982987b1
COLLECTIONS="essenFolksong ryansMammoth airdsAirs miscFolk"
ABC2MIDI_FLAGS="-silent -NGRA -NGUI -NFER -NFNP"
OUT=data/melody
CACHE=data/cache
BIN=.build/release/jukebox

cd "$(dirname "$0")/.."
export LC_ALL=C   # byte-wise sort order and awk character handling, the same on every machine
TAB=$(printf '\t')

die() { echo "melody-data: $*" >&2; exit 1; }

# summary DIR: the tunes kept per collection and split, those of them abc2midi reported errors
# on, and those dropped per reason, from DIR's tunes.tsv, abc2midi-errors.tsv and dropped.tsv.
summary() {
    awk -F '\t' -v collections="$COLLECTIONS" '
        FNR == 1 { next }
        FILENAME ~ /tunes\.tsv$/ { kept[$2, $4]++; kept[$2]++; kept["all", $4]++; kept["all"]++; next }
        FILENAME ~ /errors\.tsv$/ { if (!($1 in erred)) { erred[$1] = 1; errors[$2]++; errors["all"]++ }; next }
        { dropped[$2, $3]++; dropped["all", $3]++; dropped[$2]++; dropped["all"]++ }
        END {
            n = split(collections " all", c, " ")
            split("train validation test", s, " ")
            r = split("meter|meter change|duplicate|no MIDI", reason, "|")
            printf "%-14s %6s %6s %10s %6s %15s   %7s", "tunes", "kept", "train", "validation", "test", "abc2midi errors", "dropped"
            for (j = 1; j <= r; j++) printf "  %s", reason[j]
            printf "\n"
            for (i = 1; i <= n; i++) {
                printf "%-14s %6d %6d %10d %6d %15d   %7d", c[i], kept[c[i]], kept[c[i], s[1]], kept[c[i], s[2]], kept[c[i], s[3]], errors[c[i]], dropped[c[i]]
                for (j = 1; j <= r; j++) printf "  %" length(reason[j]) "d", dropped[c[i], reason[j]]
                printf "\n"
            }
        }' "$1/tunes.tsv" "$1/abc2midi-errors.tsv" "$1/dropped.tsv"
}

# chunk_counts: HOOK for the melody reader (not written yet). When the built jukebox has
# `melody stats`, it prints the 2-bar chunks per split; the arguments are a guess until the
# subcommand lands.
chunk_counts() {
    if [ -x "$BIN" ] && "$BIN" melody stats --help >/dev/null 2>&1; then
        "$BIN" melody stats "$OUT"
    else
        echo "2-bar chunks per split: printed by \`jukebox melody stats\` (not in this build yet)"
    fi
}

# stamp: what the data in $OUT was made from; a different abc2midi may convert differently.
stamp() {
    echo "melody-data $SCRIPT_VERSION; music21 $MUSIC21_VERSION sha256 $MUSIC21_SHA256;" \
        "abc2midi $(abc2midi -ver 2>/dev/null || echo none); flags $ABC2MIDI_FLAGS"
}

if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$(stamp)" ]; then
    echo "melody-data: $OUT is up to date"
    summary "$OUT"
    chunk_counts
    exit 0
fi

# Tools: abc2midi and unzip from Debian, pip only to download the wheel.
need=""
command -v abc2midi >/dev/null 2>&1 || need="$need abcmidi"
command -v unzip >/dev/null 2>&1 || need="$need unzip"
python3 -m pip --version >/dev/null 2>&1 || need="$need python3-pip"
if [ -n "$need" ]; then
    echo "melody-data: installing$need" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""
    elif command -v sudo >/dev/null 2>&1; then SUDO=sudo
    else die "need root or sudo to install$need (or install them yourself)"; fi
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need; } >/dev/null 2>&1 ||
        die "apt-get could not install$need"
fi
ABC2MIDI_VERSION=$(abc2midi -ver 2>/dev/null) || die "abc2midi does not run (Debian package abcmidi)"
for tool in awk cksum sha256sum sort cut find xargs mktemp; do
    command -v $tool >/dev/null 2>&1 || die "missing tool: $tool"
done

mkdir -p data "$CACHE"
TMP=$(mktemp -d "$PWD/data/.melody-build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM HUP
BUILD=$TMP/melody   # renamed to $OUT at the end
WORK=$TMP/work      # scratch: the unpacked wheel and one .abc file per tune
mkdir -p "$BUILD" "$WORK"

# 1. The wheel.
wheel_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d ' ' -f 1)" = "$MUSIC21_SHA256" ]; }
if ! wheel_ok "$CACHE/$MUSIC21_WHEEL"; then
    echo "melody-data: downloading music21 $MUSIC21_VERSION with pip" >&2
    python3 -m pip download --quiet --no-deps --only-binary=:all: "music21==$MUSIC21_VERSION" -d "$WORK/download" \
        >"$WORK/pip.log" 2>&1 || die "pip could not download music21==$MUSIC21_VERSION (see: python3 -m pip download --no-deps music21==$MUSIC21_VERSION)"
    [ -f "$WORK/download/$MUSIC21_WHEEL" ] || die "pip did not write $MUSIC21_WHEEL"
    wheel_ok "$WORK/download/$MUSIC21_WHEEL" ||
        die "$MUSIC21_WHEEL has sha256 $(sha256sum "$WORK/download/$MUSIC21_WHEEL" | cut -d ' ' -f 1), not the recorded $MUSIC21_SHA256: upstream changed; check it and update MUSIC21_SHA256"
    mv "$WORK/download/$MUSIC21_WHEEL" "$CACHE/$MUSIC21_WHEEL"
fi

# 2. The four collections and the licence notes, nothing else of the wheel.
patterns="music21/corpus/license.txt music21/corpus/essenFolksong/license.txt"
for c in $COLLECTIONS; do patterns="$patterns music21/corpus/$c/*.abc"; done
# shellcheck disable=SC2086 # the patterns are for unzip to expand
unzip -q "$CACHE/$MUSIC21_WHEEL" $patterns -d "$WORK/wheel" || die "could not unpack the collections from $MUSIC21_WHEEL"
CORPUS=$WORK/wheel/music21/corpus
cp "$CORPUS/license.txt" "$BUILD/license-corpus.txt"
cp "$CORPUS/essenFolksong/license.txt" "$BUILD/license-essenFolksong.txt"

# 3 and 4. Split into tunes, judge each one's meter, and write each kept one to
# WORK/abc/COLLECTION/FILE-X.abc and its id to WORK/id/COLLECTION/FILE-X. One line per tune on
# stdout: id, collection, name, meters, verdict ("keep", or a reason and its detail).
for c in $COLLECTIONS; do mkdir -p "$WORK/abc/$c" "$WORK/id/$c" "$BUILD/train/$c" "$BUILD/validation/$c" "$BUILD/test/$c"; done
files=$(cd "$WORK/wheel" && for c in $COLLECTIONS; do ls music21/corpus/$c/*.abc; done | sort)
[ -n "$files" ] || die "no .abc files found in $MUSIC21_WHEEL"
(cd "$WORK/wheel" && awk -v out="$WORK" '
    function field(line) { line = substr(line, 3); sub(/%.*/, "", line); gsub(/[ \t\r]/, "", line); return line }
    function duple(m) { return m == "4/4" || m == "C" || m == "C|" || m == "2/2" || m == "2/4" }
    # meter_change(m): records a body meter; the first non-duple one decides the verdict.
    function meter_change(m) {
        if (!duple(m) && bad == "") bad = m
        if (m != meters_last) { meters = meters "," m; meters_last = m }
    }
    function finish(   verdict, key, path) {
        if (x == "") return
        if (!in_body) meters = meter
        key = header_fields "\n" meter "\n" unit "\n" key_sig "\n" body
        if (meter == "") verdict = "meter\tnone given (free meter)"
        else if (!duple(meter)) verdict = "meter\t" meter
        else if (bad != "") verdict = "meter change\tto " bad
        else if (key in first) verdict = "duplicate\tof " first[key]
        else {
            verdict = "keep"
            first[key] = id
            path = out "/abc/" collection "/" name ".abc"
            printf "%s%s", header, tune > path
            close(path)
            path = out "/id/" collection "/" name   # the id alone, for cksum
            printf "%s", id > path
            close(path)
        }
        printf "%s\t%s\t%s\t%s\t%s\n", id, collection, name, meters, verdict
        x = ""
    }
    FNR == 1 {
        finish()
        n = split(FILENAME, part, "/"); collection = part[n - 1]; stem = part[n]; sub(/\.abc$/, "", stem)
        header = ""; header_fields = ""; file_meter = ""; file_unit = ""; in_header = 1
    }
    in_header && !/^X:/ {
        header = header $0 "\n"
        if (/^[A-Za-z]:/) header_fields = header_fields $0 "\n"
        if (/^M:/) file_meter = field($0)
        if (/^L:/) file_unit = field($0)
        next
    }
    /^X:/ {
        finish()
        in_header = 0
        x = field($0); id = collection "/" stem "/" x; name = stem "-" x
        tune = $0 "\n"; in_body = 0; bad = ""; body = ""; meters = ""
        meter = file_meter; unit = file_unit; key_sig = ""
        next
    }
    x == "" { next }                 # free text between tunes
    /^[ \t\r]*$/ { finish(); next }  # an empty line ends the tune
    { tune = tune $0 "\n" }
    !in_body {
        if (/^M:/) meter = field($0)
        if (/^L:/) unit = field($0)
        if (/^K:/) { key_sig = field($0); in_body = 1; meters = meter; meters_last = meter }
        next
    }
    {
        body = body $0 "\n"
        if (/^M:/) meter_change(field($0))
        s = $0
        while (match(s, /\[M:[^]]*\]/)) {
            meter_change(field(substr(s, RSTART + 1, RLENGTH - 2)))
            s = substr(s, RSTART + RLENGTH)
        }
    }
    END { finish() }
' $files) > "$WORK/tunes.txt" || die "splitting the .abc files into tunes failed"

# 5. The split of each kept tune from the CRC of its id; one cksum reads all the id files
# (the same CRC as `printf %s ID | cksum`). The verdict "keep" becomes the split.
(cd "$WORK/id" && find . -type f | xargs cksum) > "$WORK/crc.txt" || die "cksum failed"
awk -F '\t' -v OFS='\t' '
    NR == FNR { split($0, f, " "); crc[substr(f[3], 3)] = f[1]; next }   # CRC, length, ./COLLECTION/NAME
    $5 == "keep" {
        bucket = crc[$2 "/" $3] % 100
        $5 = bucket < 85 ? "train" : bucket < 90 ? "validation" : "test"
    }
    { print }' "$WORK/crc.txt" "$WORK/tunes.txt" > "$WORK/tunes-split.txt"

# 6. Convert. abc2midi exits with 0 even when it reports errors, and often recovers from them
# (a bowing mark before an annotation, a staccato dot after a broken-rhythm sign, which it
# then plays evenly), so a tune is dropped only when no MIDI file comes out; the error
# messages of the tunes kept go to abc2midi-errors.tsv.
printf 'id\tcollection\tmeter\tsplit\tfile\n' > "$BUILD/tunes.tsv"
printf 'id\tcollection\treason\tdetail\n' > "$BUILD/dropped.tsv"
printf 'id\tcollection\tmessage\n' > "$BUILD/abc2midi-errors.tsv"
while IFS="$TAB" read -r id collection name meter split detail; do
    case $split in
        train|validation|test) ;;
        *) printf '%s\t%s\t%s\t%s\n' "$id" "$collection" "$split" "$detail" >> "$BUILD/dropped.tsv"; continue ;;
    esac
    file=$split/$collection/$name.mid
    # shellcheck disable=SC2086 # the flags are separate words
    abc2midi "$WORK/abc/$collection/$name.abc" $ABC2MIDI_FLAGS -o "$BUILD/$file" >"$WORK/abc2midi.log" 2>&1 || true
    if [ -s "$BUILD/$file" ]; then
        printf '%s\t%s\t%s\t%s\t%s\n' "$id" "$collection" "$meter" "$split" "$file" >> "$BUILD/tunes.tsv"
        while read -r line; do
            case $line in Error*) printf '%s\t%s\t%s\n' "$id" "$collection" "$line" >> "$BUILD/abc2midi-errors.tsv" ;; esac
        done < "$WORK/abc2midi.log"
    else
        rm -f "$BUILD/$file"
        printf '%s\t%s\tno MIDI\t%s\n' "$id" "$collection" "$(grep -m 1 Error "$WORK/abc2midi.log" || echo "abc2midi wrote nothing")" >> "$BUILD/dropped.tsv"
    fi
done < "$WORK/tunes-split.txt"
[ "$(wc -l < "$BUILD/tunes.tsv")" -gt 1 ] || die "no tune was converted; see abc2midi $ABC2MIDI_FLAGS on one of $WORK/abc"

COUNTS=$(summary "$BUILD")
cat > "$BUILD/README" <<EOF
Folk melodies for jukebox's symbolic melody models, made by scripts/melody-data.sh
(version $SCRIPT_VERSION). Do not commit or redistribute anything in this folder.

Source: the corpus inside the music21 $MUSIC21_VERSION wheel from PyPI
($MUSIC21_WHEEL, sha256 $MUSIC21_SHA256):
its ABC collections essenFolksong (the Essen folk song database, ABC encodings by Seymour
Schlien), ryansMammoth (Ryan's Mammoth Collection, 1883, encoded by the contributors named in
each file), airdsAirs (James Aird's Selection of Scotch, English, Irish and Foreign Airs,
1778-, encoded by Jack Campin, 2009) and miscFolk (colonial American fife tunes and Bruce and
Stokoe's Northumbrian Minstrelsy, 1882, encoded by Jack Campin); nothing else of music21.

Licences: music21 itself is BSD-licensed; its corpus is not. license-corpus.txt: some
encodings "may not be used for commercial uses or have other restrictions".
license-essenFolksong.txt: the legal status of the Essen database is unclear; Ewa
Dahlig-Turek gave permission for non-commercial distribution and use in music21. Use this
data for non-commercial research only, and keep its tunes and anything derived from them note
for note out of git.

Made with abc2midi ($ABC2MIDI_VERSION): abc2midi TUNE.abc $ABC2MIDI_FLAGS,
one tune per file with its file's header in front. Kept: duple meters (M:4/4, C, C|, 2/2,
2/4, also after a change in the body); dropped: other and free meters, exact duplicates, and
tunes without MIDI output (dropped.tsv says which and why). abc2midi-errors.tsv lists the
error messages abc2midi printed for tunes it still converted. In the MIDI files the first
note of every bar has velocity 105 (abc2midi's %%MIDI beat 105 95 80 1): it marks the
downbeat. A tune with several voices is a format-1 file with one track per voice.
Split by tune: the cksum CRC of the id (COLLECTION/FILE/X) modulo 100: below 85 train,
below 90 validation, else test. tunes.tsv lists the kept tunes; its meter column lists each
tune's meters in order.

$COUNTS
EOF

stamp > "$BUILD/.stamp"
# Swap in the new folder: the old one is moved aside first, so $OUT is never half-written.
if [ -e "$OUT" ]; then mv "$OUT" "$TMP/old"; fi
mv "$BUILD" "$OUT"
echo "melody-data: wrote $OUT"
echo "$COUNTS"
chunk_counts
