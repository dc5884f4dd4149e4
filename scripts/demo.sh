#!/usr/bin/env bash
# The README's main job in one command: installs what is missing, builds `recur`, trains a
# character-level LSTM for a few minutes on the English quotes of Debian's fortunes and
# fortunes-min packages (about 2.5 MB of text, 42 files) and prints samples. Needs nothing from
# ../shared.
#   Usage: scripts/demo.sh [seconds of training, default 180]
# Re-running continues nothing: each run starts over (--force) in build/demo/run.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-180}"

scripts/setup.sh test  # compiler, CMake, OpenBLAS, ..., fortunes and fortunes-min
cmake -S . -B build -DRECUR_BUILD_BENCH=OFF >/dev/null
cmake --build build -j2 --target recur_cli
recur=build/apps/recur

# fortune files are quotes separated by lines holding a single '%'; a few use backspace
# overstriking ("_\bx" for an underlined x), which is removed so it does not become text.
# The file list comes from the packages themselves (sorted, so the corpus is the same byte for
# byte on every machine with the same package versions); .dat/.u8 are fortune's indexes, and
# ascii-art is pictures, not text (a third of its characters are '#', '/', '\', '|', '_').
mkdir -p build/demo
corpus=build/demo/fortunes.txt
dpkg -L fortunes fortunes-min | grep '^/usr/share/games/fortunes/[^/]*$' | grep -v '\.\(dat\|u8\)$\|/ascii-art$' | sort |
  while read -r f; do [ -f "$f" ] && sed -e 's/.\x08//g' -e 's/\r$//' "$f" | grep -v '^%$' || true; done >"$corpus"
echo "demo: corpus $corpus, $(wc -c <"$corpus") bytes; training for ${secs}s"

# 2x256 LSTM over characters (one-hot input), Adam, truncated BPTT over 64 steps: a size that
# gives word-like samples within minutes on two cores. Ctrl-C stops early and keeps the model.
# --patience 5: a longer run (scripts/demo.sh 3600) stops by itself once five validations in a
# row (500 steps) have not beaten the best, and best.safetensors keeps the best model.
"$recur" train "$corpus" --out build/demo/run --force --level char --cell lstm --layers 2 --hidden 256 \
  --dropout 0.1 --batch 32 --seq-len 64 --lr 0.003 --time "$secs" --valid-every 100 --log-every 50 --patience 5 || [ $? -eq 130 ]

echo
echo "demo: samples (temperature 0.7):"
"$recur" sample build/demo/run/best.safetensors --length 600 --temperature 0.7 --seed 1 --prime "The "
echo
"$recur" info build/demo/run/best.safetensors
