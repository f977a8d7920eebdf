#!/bin/sh
# Installs the native libraries jukebox links against, when one of their headers is missing; the
# MIDI tools the MIDI tests and data preparation use (midicsv, abc2midi), when a command is
# missing; and the General MIDI soundfont `jukebox melody render` plays, when its file is missing.
# Quick when everything is there; uses apt-get as root or through sudo.
set -eu

PACKAGES="libopenblas-dev libfftw3-dev libsndfile1-dev libsamplerate0-dev libfluidsynth-dev midicsv abcmidi timgm6mb-soundfont"
MULTIARCH=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)

missing=""
for header in cblas.h fftw3.h sndfile.h samplerate.h fluidsynth.h; do
    if [ ! -e "/usr/include/$header" ] && [ ! -e "/usr/include/$MULTIARCH/$header" ]; then
        missing="$missing $header"
    fi
done
# midicsv cross-checks the MIDI reader; abc2midi (package abcmidi) turns ABC tunes into MIDI.
for command in midicsv abc2midi; do
    if ! command -v "$command" >/dev/null 2>&1; then
        missing="$missing $command"
    fi
done
# TimGM6mb (GPL-2, from MuseScore 1.3) is the soundfont melody render finds first.
if [ ! -e /usr/share/sounds/sf2/TimGM6mb.sf2 ]; then
    missing="$missing TimGM6mb.sf2"
fi
[ -z "$missing" ] && exit 0

echo "jukebox: missing:$missing; installing $PACKAGES" >&2
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "jukebox: need root or sudo to install $PACKAGES" >&2
    exit 1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $PACKAGES >/dev/null
