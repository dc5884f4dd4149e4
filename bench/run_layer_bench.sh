#!/usr/bin/env bash
# Recurrent layer: recur (bench/bench_rnn.cpp) against PyTorch (bench/torch_rnn_layer.py) at 1
# and 2 BLAS threads, one table with the recur/PyTorch throughput ratio per case.
#
#   bench/run_layer_bench.sh [build-dir]        (default: build-bench next to this repo's root)
#   env: RECUR_PEAK_GFLOPS (per-thread peak for peak%, default 115), THREADS ("1 2"),
#        FILTER (substring of a case name, e.g. "lstm/fwd/"), OUT_DIR (raw JSON, default a tmp dir),
#        TORCH_OMP_WAIT_POLICY (default passive; "active" is libgomp's own default)
#
# recur links the OpenBLAS that pkg-config / update-alternatives selects (normally the pthread
# build) and gets its thread count from OPENBLAS_NUM_THREADS. PyTorch is pointed at the OpenMP
# OpenBLAS build when installed, since torch itself threads with OpenMP, and told its thread
# count with torch.set_num_threads; it prints the BLAS it actually mapped.
# On a shared machine libgomp's default spin-waiting makes PyTorch at 2 threads 10-100x slower
# whenever another process holds a core (measured: 1717 ms vs 19 ms per LSTM H=128 B=1 step),
# so PyTorch runs with OMP_WAIT_POLICY=passive unless told otherwise. OpenBLAS's pthread build
# (recur) sleeps on its own after a short spin and needs no such setting.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-bench}
bench=$build/bench/bench_rnn
threads_list=${THREADS:-1 2}
filter=${FILTER:-}
out=${OUT_DIR:-$(mktemp -d /tmp/recur_layer_bench.XXXXXX)}
mkdir -p "$out"
torch_python=/usr/bin/python3  # Debian's python3-torch; the pyenv python3 has no torch
omp_blas=/usr/lib/x86_64-linux-gnu/openblas-openmp

[[ -x $bench ]] || { echo "error: $bench not built (cmake --build $build --target bench_rnn)" >&2; exit 1; }

torch_ld=${LD_LIBRARY_PATH:-}
if [[ -e $omp_blas/libblas.so.3 ]]; then
  torch_ld=$omp_blas${torch_ld:+:$torch_ld}
else
  echo "note: $omp_blas not installed, PyTorch uses the default BLAS" >&2
fi

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "recur BLAS: $(ldd "$bench" | grep -o '/[^ ]*openblas[^ ]*' | head -1 | xargs -r readlink -f)"

for t in $threads_list; do
  echo "== recur, $t thread(s)"
  OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t "$bench" --benchmark_filter="${filter:-.}" \
    --benchmark_out="$out/recur_t$t.json" --benchmark_out_format=json
  echo "== PyTorch, $t thread(s)"
  OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t OMP_WAIT_POLICY=${TORCH_OMP_WAIT_POLICY:-passive} LD_LIBRARY_PATH=$torch_ld \
    "$torch_python" "$root/bench/torch_rnn_layer.py" --threads "$t" --filter "$filter" --json "$out/torch_t$t.json"
done

echo
echo "== raw results in $out; ratio = recur throughput / PyTorch throughput (> 1: recur faster)"
# Any python3 will do for the table (no torch needed).
python3 - "$out" $threads_list <<'EOF'
import json, re, sys
out, threads = sys.argv[1], sys.argv[2:]
print("| case | thr | recur ms | torch ms | recur tok/s | torch tok/s | recur GFLOP/s | torch GFLOP/s | recur peak% | recur/torch |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for t in threads:
    recur = {}
    for b in json.load(open(f"{out}/recur_t{t}.json"))["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        name = re.sub(r"/(min_time:[0-9.]+|real_time)", "", b["name"])
        recur[name] = b
    for r in json.load(open(f"{out}/torch_t{t}.json"))["results"]:
        c = recur.get(r["name"])
        if c is None:
            continue
        ms = c["real_time"]  # the benchmarks report in milliseconds
        print(f"| {r['name']} | {t} | {ms:.2f} | {r['ms']:.2f} | {c['tokens']:.0f} | {r['tokens_per_s']:.0f} | "
              f"{c['GFLOP']:.1f} | {r['gflops']:.1f} | {c['peak_pct']:.1f} | {r['ms'] / ms:.2f} |")
EOF
