#!/usr/bin/env bash
# Prepared task corpora (issue 16): CoNLL-2003 eng.train, repeated REPEAT times (sentences in
# the same order, so the tables' counts scale and the vocabulary stays), read as a file and as a
# prepared corpus, side by side in one run. Prints, as BENCHMARKS.md shows them:
#   - `wc -l` (one read of every byte) and `recur prepare --task tag`: seconds, MB/s, peak memory;
#   - STEPS training steps of a CRF tagger with characters on the file and on the prepared
#     corpus: wall seconds (start-up included), peak memory, and the loop's tokens/s (the median
#     of metrics.jsonl's lines after the first).
#
# Usage: bench/prepare_task.sh [RECUR_BINARY]   (default build/apps/recur)
# knobs: REPEAT=1, STEPS=60, THREADS=1, WORK=DIR (default a temp dir), TRAIN=FILE (default
#        ../shared/data/ner/conll2003/eng.train), VALID=FILE (default the first 200 lines of eng.testa)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
recur=$(realpath "${1:-$here/../build/apps/recur}")
data="$here/../../shared/data"
[[ -d $data ]] || data=/work/shared/data
repeat=${REPEAT:-1}
steps=${STEPS:-60}
threads=${THREADS:-1}
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
[[ -n ${WORK:-} ]] || trap 'rm -rf "$work"' EXIT

train="$work/train.conll"
: > "$train"
for ((i = 0; i < repeat; i++)); do cat "${TRAIN:-$data/ner/conll2003/eng.train}" >> "$train"; done
valid="$work/valid.conll"
if [[ -n ${VALID:-} ]]; then cp "$VALID" "$valid"; else head -200 "$data/ner/conll2003/eng.testa" > "$valid"; fi
mb=$(awk -v b="$(stat -c %s "$train")" 'BEGIN { printf "%.1f", b / 1e6 }')

# "seconds peak_MB" of a command (GNU time), its output to $work/last.log.
measure() {
  /usr/bin/time -f '%e %M' -o "$work/time.txt" "$@" > "$work/last.log" 2>&1
  awk '{ printf "%s %.0f\n", $1, $2 / 1024 }' "$work/time.txt"
}
rate() { awk -v s="$1" -v m="$mb" 'BEGIN { printf "%.1f", (s > 0 ? m / s : 0) }'; }
tput() {  # median tokens/s of the training lines after the first
  grep '"type":"train"' "$1/metrics.jsonl" | tail -n +2 | grep -o '"tokens_per_s":[0-9.e+]*' | cut -d: -f2 | sort -g |
    awk '{ v[NR] = $1 } END { if (NR) printf "%.0f", v[int((NR + 1) / 2)]; else print "-" }'
}

echo "corpus: $train, $mb MB ($repeat x eng.train), $(grep -c . "$train") non-blank lines; recur $("$recur" --version | head -1)"
printf '%-44s %8s %8s %8s %10s\n' what seconds MB/s peak_MB tokens/s
read -r s m < <(measure wc -l "$train")
printf '%-44s %8s %8s %8s %10s\n' "wc -l" "$s" "$(rate "$s")" "$m" ""
rm -rf "$work/prep"
read -r s m < <(measure "$recur" prepare --task tag "$train" --out "$work/prep" --quiet)
printf '%-44s %8s %8s %8s %10s\n' "recur prepare --task tag" "$s" "$(rate "$s")" "$m" ""
flags=(--task tag --valid "$valid" --crf --char-rnn --hidden 100 --layers 1 --embed 100 --batch 32 --steps "$steps"
       --log-every 10 --valid-every 0 --threads "$threads" --seed 1 --force)
read -r s m < <(measure "$recur" train "$train" --out "$work/run_text" "${flags[@]}")
printf '%-44s %8s %8s %8s %10s\n' "recur train FILE, $steps steps" "$s" "" "$m" "$(tput "$work/run_text")"
read -r s m < <(measure "$recur" train "$work/prep" --out "$work/run_prep" "${flags[@]}")
printf '%-44s %8s %8s %8s %10s\n' "recur train PREPARED, $steps steps" "$s" "" "$m" "$(tput "$work/run_prep")"
if cmp -s <(grep -o '"loss":[^,]*' "$work/run_text/metrics.jsonl") <(grep -o '"loss":[^,]*' "$work/run_prep/metrics.jsonl"); then
  echo "losses: bit-identical"
else
  echo "losses: DIFFER"
  exit 1
fi
