#!/usr/bin/env bash
# Issue 14, point 3: the portable build (the default, what `cmake --install` ships: -mavx2 -mfma,
# runs on any x86-64 with AVX2) against the -march=native build (RECUR_NATIVE=ON), side by side
# in one run: recur_suite from both trees, alternated case by case and round by round, at 1 and 2
# threads. Prints tokens/s (median of all repeats) and portable/native per case.
#   bash bench/portable_vs_native.sh
#   env: CASES (char_lstm_2x512_train,char_lstm_2x512_fwd,ptb_small_train,ptb_small_fwd),
#        THREADS ("1 2"), ROUNDS (3), SKIP_BUILD=1
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cases=${CASES:-char_lstm_2x512_train,char_lstm_2x512_fwd,ptb_small_train,ptb_small_fwd}
threads_list=${THREADS:-1 2}
rounds=${ROUNDS:-3}
declare -A dir=([portable]=$root/build-bench-portable [native]=$root/build-bench)
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  for b in portable native; do
    flag=OFF; [[ $b == native ]] && flag=ON
    cmake -S "$root" -B "${dir[$b]}" -DCMAKE_BUILD_TYPE=Release -DRECUR_BUILD_TESTS=OFF -DRECUR_NATIVE=$flag >/dev/null
    cmake --build "${dir[$b]}" --target recur_suite -j"$(env -u OMP_NUM_THREADS nproc)" >/dev/null
  done
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(env -u OMP_NUM_THREADS nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
IFS=, read -r -a case_list <<<"$cases"
for ((r = 0; r < rounds; r++)); do
  for c in "${case_list[@]}"; do
    for t in $threads_list; do
      order=(portable native); ((r % 2)) && order=(native portable)
      for b in "${order[@]}"; do
        line=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "${dir[$b]}/bench/recur_suite" \
          --cases bench/suite_cases.json --case "$c" --threads "$t" --warmup 2)
        echo "$b $line" >>"$out"
      done
    done
  done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$out" <<'PY'
import collections, json, statistics, sys
times = collections.defaultdict(list)
tokens = {}
for raw in open(sys.argv[1]):
    build, line = raw.split(" ", 1)
    r = json.loads(line)
    key = (r["case"], r["threads"])
    times[key, build] += r["times_s"]
    tokens[key] = r["tokens_per_repeat"]
print("| case | threads | portable tok/s | native tok/s | portable / native |")
print("|---|---:|---:|---:|---:|")
for key in sorted(tokens):
    p = tokens[key] / statistics.median(times[key, "portable"])
    n = tokens[key] / statistics.median(times[key, "native"])
    print(f"| {key[0]} | {key[1]} | {p:,.0f} | {n:,.0f} | {p / n:.3f} |")
PY
