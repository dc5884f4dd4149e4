#!/usr/bin/env bash
# The speed suite (issue 7): every case of bench/suite_cases.json in recur, PyTorch and oneDNN,
# side by side, at 1 and 2 threads, one table at the end (bench/suite_table.py).
#
#   bash bench/suite.sh                 install (scripts/setup.sh bench), build, run, print the table
#   env: NATIVE (OFF: the portable build users install; ON: -march=native), THREADS ("1 2"), CASES (comma-separated names, default all), IMPLS ("recur pytorch onednn"),
#        ROUNDS (1: how many times the whole alternation is repeated; repeats are pooled),
#        WARMUP (2), REPEATS (the case's own, else 5), BUILD (build-bench), OUT (results file),
#        SKIP_SETUP=1 (do not apt-get install), OMP_WAIT_POLICY (passed to all three, default unset)
#
# Fairness: PyTorch runs with the OpenMP build of OpenBLAS (Debian's torch links libblas.so.3,
# which update-alternatives points at the pthread build; under torch's OpenMP threads that
# build is 2-5x slower at 2 threads), selected with LD_LIBRARY_PATH; each program prints the
# BLAS it actually mapped and the table shows it. Every process is told its thread count
# (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and the program's own setting). Each (case, threads)
# runs the three implementations one after another, in an order rotated per case, each in its
# own process so that peak memory is per case.
#
# Precision: a case's optional "precision" (f32 default; bf16 or int8 for generate cases) is read
# by each implementation itself. An implementation that has no such path exits with status 3,
# "not applicable": suite.sh notes it on stderr, records nothing, and the table shows "-".
# dnnl_suite does so for every non-f32 case (the oneDNN anchor is float32 only); recur_suite and
# torch_suite run bf16/int8 generation (torch: quantize_dynamic / autocast, bench/torch_suite.py)
# and refuse a compressed precision on a train/forward case with exit 2, which stops the suite.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD:-$root/build-bench}
threads_list=${THREADS:-1 2}
impls=${IMPLS:-recur pytorch onednn}
rounds=${ROUNDS:-1}
warmup=${WARMUP:-2}
cases_file=$root/bench/suite_cases.json
out=${OUT:-$build/suite_results.jsonl}
torch_python=/usr/bin/python3  # Debian's python3-torch
omp_blas=/usr/lib/x86_64-linux-gnu/openblas-openmp

if [[ ${SKIP_SETUP:-0} != 1 ]]; then
  bash scripts/setup.sh bench
fi
# RECUR_NATIVE is passed every time: a cached value would otherwise decide silently which build
# the tables measure (the default build is portable, -mavx2 -mfma; NATIVE=ON adds -march=native).
native=${NATIVE:-OFF}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DRECUR_BUILD_TESTS=OFF -DRECUR_NATIVE="$native" >/dev/null
cmake --build "$build" --target recur_suite dnnl_suite -j"$(nproc)" >/dev/null
[[ -e $omp_blas/libblas.so.3 ]] || { echo "suite.sh: $omp_blas missing (apt-get install libopenblas0-openmp)" >&2; exit 1; }

cases=${CASES:-$("$build/bench/recur_suite" --cases "$cases_file" --list | paste -sd,)}
IFS=, read -r -a case_list <<<"$cases"
read -r -a impl_list <<<"$impls"
repeat_args=()
[[ -n ${REPEATS:-} ]] && repeat_args=(--repeats "$REPEATS")

not_applicable=3  # exit status of an implementation that has no path for the case (header)

run_one() {  # impl case threads -> one JSON line appended to $out (nothing if not applicable)
  local impl=$1 case=$2 t=$3 line rc=0
  local args=(--cases "$cases_file" --case "$case" --threads "$t" --warmup "$warmup" "${repeat_args[@]}")
  local env=(OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t")
  [[ -n ${OMP_WAIT_POLICY:-} ]] && env+=(OMP_WAIT_POLICY="$OMP_WAIT_POLICY")
  case $impl in
    recur) line=$(env "${env[@]}" "$build/bench/recur_suite" "${args[@]}") || rc=$? ;;
    onednn) line=$(env "${env[@]}" "$build/bench/dnnl_suite" "${args[@]}") || rc=$? ;;
    pytorch) line=$(env "${env[@]}" LD_LIBRARY_PATH="$omp_blas" "$torch_python" bench/torch_suite.py "${args[@]}") || rc=$? ;;
    *) echo "suite.sh: unknown implementation '$impl'" >&2; exit 2 ;;
  esac
  if ((rc == not_applicable)); then
    printf '  %-8s %-24s %d thr   not applicable\n' "$impl" "$case" "$t" >&2
    return 0
  fi
  ((rc == 0)) || { echo "suite.sh: $impl failed on $case at $t thread(s) (exit $rc)" >&2; exit "$rc"; }
  echo "$line" >>"$out"
  python3 -c 'import json, sys, statistics as s; r = json.loads(sys.argv[1]); print("  %-8s %-24s %d thr %10.0f tok/s" % (r["impl"], r["case"], r["threads"], r["tokens_per_repeat"] / s.median(r["times_s"])), file=sys.stderr)' "$line"
}

: >"$out"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; recur built with RECUR_NATIVE=$native; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "results: $out" >&2
for t in $threads_list; do
  env OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" "$build/bench/recur_suite" --peak --threads "$t" >>"$out"
done
n=0
for ((round = 1; round <= rounds; ++round)); do
  for case in "${case_list[@]}"; do
    for t in $threads_list; do
      k=${#impl_list[@]}
      for ((j = 0; j < k; ++j)); do
        run_one "${impl_list[$(((j + n) % k))]}" "$case" "$t"
      done
      n=$((n + 1))
    done
  done
done
# The peak again at the end: the table takes the larger of the two, so a busy moment at the
# start does not inflate every peak% of the run.
for t in $threads_list; do
  env OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" "$build/bench/recur_suite" --peak --threads "$t" >>"$out"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo
python3 bench/suite_table.py "$out" "$cases_file"
