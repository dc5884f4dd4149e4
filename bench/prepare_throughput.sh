#!/usr/bin/env bash
# prepare throughput (issue 16): generates a text corpus of SIZE_MB from the shared data (PTB
# train and Tiny Shakespeare lines, repeated and shuffled with a fixed seed), then times, on the
# same file: `wc` (the floor: one read of every byte), `recur prepare` at word and char level,
# and, where PyTorch is installed, the tokenisation of PyTorch's word_language_model example
# (data.py's Corpus.tokenize: a Python loop over line.split() + ['<eos>'], the ids into a tensor).
# Prints MB/s and peak resident memory (GNU time) for each, as BENCHMARKS.md shows them; then
# the peak memory of 20 training steps on the text and on the prepared corpus (MB/s there is
# only the corpus size over the run's time).
#
# Last, the training throughput on both (tokens/s of the loop as metrics.jsonl logs it, the
# median of its lines after the first, text and prepared alternated ROUNDS times).
#
# Usage: bench/prepare_throughput.sh [RECUR_BINARY]   (default build/apps/recur)
# knobs: SIZE_MB=100 (the corpus size), WORK=DIR (where corpus and outputs go; default a temp dir),
#        TORCH_MB=0 (PyTorch's tokeniser on only the first N MB: it holds every line as a
#        tensor, about 3x the text, which a 5 GB corpus does not fit beside; 0 = the whole file),
#        TPUT_STEPS=300 and ROUNDS=2 (the throughput runs; TPUT_STEPS=0 skips them)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
recur=$(realpath "${1:-$here/../build/apps/recur}")
data="$here/../../shared/data"
[[ -d $data ]] || data=/work/shared/data
size_mb=${SIZE_MB:-100}
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
[[ -n ${WORK:-} ]] || trap 'rm -rf "$work"' EXIT

corpus="$work/corpus.txt"
if [[ ! -f $corpus || $(stat -c %s "$corpus") -lt $((size_mb * 1000000)) ]]; then
  seedfile="$work/seed.bin"
  head -c 1048576 /dev/zero > "$seedfile"  # shuf --random-source: the same order every run
  cat "$data/ptb/ptb.train.txt" "$data/tinyshakespeare/input.txt" > "$work/base.txt"
  : > "$corpus"
  while [[ $(stat -c %s "$corpus") -lt $((size_mb * 1000000)) ]]; do
    shuf --random-source="$seedfile" "$work/base.txt" >> "$corpus"
  done
  truncate -s $((size_mb * 1000000)) "$corpus"
  # End on a whole line.
  printf '\n' >> "$corpus"
fi
bytes=$(stat -c %s "$corpus")
echo "corpus: $corpus, $bytes bytes"

# run NAME CMD...: wall seconds and peak RSS of CMD, and MB/s over the corpus.
run() {
  local name=$1
  shift
  local t0 t1 rss
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/time.txt" "$@" > /dev/null
  t1=$(date +%s.%N)
  rss=$(tail -1 "$work/time.txt")
  awk -v n="$name" -v b="$bytes" -v a="$t0" -v z="$t1" -v r="$rss" \
    'BEGIN { s = z - a; printf "%-34s %8.2f s  %8.1f MB/s  peak RSS %7.1f MB\n", n, s, b / 1e6 / s, r / 1024 }'
}

sync
cat "$corpus" > /dev/null  # warm the page cache: every tool below reads from memory
run "wc" wc "$corpus"
run "recur prepare --level word" "$recur" prepare "$corpus" --out "$work/prep_word" --level word --quiet
run "recur prepare --level char" "$recur" prepare "$corpus" --out "$work/prep_char" --level char --quiet
run "recur prepare --level word --mode lines" "$recur" prepare "$corpus" --out "$work/prep_lines" --level word --mode lines --quiet
py=${PYTHON:-/usr/bin/python3}  # Debian's python3-torch (scripts/setup.sh bench)
if "$py" -c 'import torch' 2> /dev/null; then
  cat > "$work/torch_tokenize.py" << 'EOF'
# PyTorch word_language_model/data.py, Dictionary and Corpus.tokenize, as published.
import sys, torch
word2idx, idx2word = {}, []
def add_word(w):
    if w not in word2idx:
        idx2word.append(w); word2idx[w] = len(idx2word) - 1
    return word2idx[w]
path = sys.argv[1]
with open(path, 'r', encoding="utf8") as f:
    for line in f:
        for word in line.split() + ['<eos>']:
            add_word(word)
with open(path, 'r', encoding="utf8") as f:
    idss = []
    for line in f:
        ids = [word2idx[w] for w in line.split() + ['<eos>']]
        idss.append(torch.tensor(ids).type(torch.int64))
    ids = torch.cat(idss)
print(len(ids))
EOF
  torch_mb=${TORCH_MB:-0}
  if [[ $torch_mb -gt 0 && $((torch_mb * 1000000)) -lt $bytes ]]; then
    head -c $((torch_mb * 1000000)) "$corpus" | sed '$d' > "$work/torch_part.txt"  # whole lines
    full_bytes=$bytes
    bytes=$(stat -c %s "$work/torch_part.txt")
    run "pytorch word_language_model (${torch_mb} MB)" "$py" "$work/torch_tokenize.py" "$work/torch_part.txt"
    bytes=$full_bytes
  else
    run "pytorch word_language_model" "$py" "$work/torch_tokenize.py" "$corpus"
  fi
else
  echo "pytorch word_language_model: skipped (no PyTorch; scripts/setup.sh bench installs it)"
fi
du -sh "$work/prep_word" "$work/prep_char"
# Peak memory of a short training run on the text itself and on its prepared corpus (same model,
# same steps: the difference is holding the text and its ids, against a batch window).
train=(--hidden 64 --layers 1 --batch 20 --seq-len 35 --steps 20 --valid-fraction 0 --threads 1 --quiet --force)
run "recur train text (word, 20 steps)" "$recur" train "$corpus" --level word --out "$work/run_text" "${train[@]}"
run "recur train prepared (word, 20 steps)" "$recur" train "$work/prep_word" --out "$work/run_prep" "${train[@]}"

# Training throughput, text against prepared: the same model and steps; the loop's own tokens/s
# (the text run's reading and tokenising happen before its first step and are not in it).
tput_steps=${TPUT_STEPS:-300}
if [[ $tput_steps -gt 0 ]]; then
  tput=(--hidden 200 --layers 2 --batch 20 --seq-len 35 --steps "$tput_steps" --log-every 25 --valid-fraction 0
        --threads 1 --quiet --force)
  median_tps() {  # the median tokens/s of a run's train lines, the first (warm-up) left out
    grep '"type":"train"' "$1/metrics.jsonl" | tail -n +2 | sed 's/.*"tokens_per_s":\([0-9.e+]*\).*/\1/' | sort -g |
      awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
  }
  for round in $(seq "${ROUNDS:-2}"); do
    "$recur" train "$corpus" --level word --out "$work/tput_text" "${tput[@]}"
    "$recur" train "$work/prep_word" --out "$work/tput_prep" "${tput[@]}"
    t=$(median_tps "$work/tput_text")
    p=$(median_tps "$work/tput_prep")
    awk -v r="$round" -v t="$t" -v p="$p" \
      'BEGIN { printf "throughput round %d: text %.0f tokens/s, prepared %.0f tokens/s, prepared/text %.3f\n", r, t, p, p / t }'
  done
fi
