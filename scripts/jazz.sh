#!/usr/bin/env bash
# The "Improvise a Jazz Solo with an LSTM" exercise in one command: an LSTM of 64 units learns
# the guitar solo of original_metheny.mid (Pat Metheny, "And Then I Knew") as pitch+duration
# tokens, then improvises one-to-many with greedy (argmax) inference from a zero state.
# Writes build/jazz/out.mid, and build/jazz/out.wav when FluidSynth is installed
# (scripts/setup.sh music). Takes about a minute on two cores. See docs/music.md.
#   Usage: scripts/jazz.sh [tokens to generate, default 200]
# Environment: RECUR (the binary, default build/apps/recur, built if missing),
#              METHENY (the MIDI file, default ../shared/data/music/metheny/original_metheny.mid).
set -euo pipefail
cd "$(dirname "$0")/.."
length="${1:-200}"
recur="${RECUR:-build/apps/recur}"
midi="${METHENY:-../shared/data/music/metheny/original_metheny.mid}"
if [ ! -x "$recur" ]; then
  cmake -S . -B build -DRECUR_BUILD_BENCH=OFF >/dev/null
  cmake --build build -j2 --target recur_cli
fi
mkdir -p build/jazz

# Why mono: the exercise models a melody as notes with durations (its "values"); the mono
# encoding is exactly that, one token per note or rest on a sixteenth grid. Channel index 5 is
# the file's Guitar track, the solo deepjazz and the course take as the melody (the other
# 18 tracks are accompaniment and drums). --embed 0: one-hot input as in the course; 100
# epochs, Adam at lr 0.01 and 30-step sequences as in its model.fit; no validation (one piece).
"$recur" train --task music "$midi" --encoding mono --channels 5 --out build/jazz/run --force \
  --layers 1 --hidden 64 --embed 0 --seq-len 30 --batch 4 --optimizer adam --lr 0.01 --epochs 100 \
  --valid-fraction 0 --log-every 200 --seed 1

wav=()
if command -v fluidsynth >/dev/null 2>&1 && [ -e /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then
  wav=(--wav-out build/jazz/out.wav)
else
  echo "jazz: fluidsynth or fluid-soundfont-gm missing (scripts/setup.sh music): writing MIDI only" >&2
fi
"$recur" sample build/jazz/run/last.safetensors --argmax --length "$length" --midi-out build/jazz/out.mid "${wav[@]}"
"$recur" music-stats --channels 5 --through mono "$midi" build/jazz/out.mid
