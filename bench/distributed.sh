#!/usr/bin/env bash
# Data-parallel training on this machine (issue 12, docs/distributed.md): for the 2x512 char
# LSTM (tiny Shakespeare) and PTB small (Zaremba), one run each of
#   1 process x 1 thread, 1 process x 2 threads, 2 ranks x 1 thread (mpirun)
# alternated ROUNDS times, and PyTorch DDP (gloo, bench/ddp_torch.py) at 1 and 2 processes on the
# char case as the anchor. Prints tokens/s (median of the runs' train lines after the first),
# scaling efficiency against 1 x 1, and rank 0's exposed wait for gradient sums per step
# (metrics.jsonl "comm_wait_s") against the step time.
#   bash bench/distributed.sh          env: ROUNDS (2), STEPS (60), BUILD (build), SKIP_TORCH=1
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD:-$root/build}
recur=$build/apps/recur
data=$root/../shared/data
rounds=${ROUNDS:-2}
steps=${STEPS:-60}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
[[ -x $recur ]] || { echo "distributed.sh: $recur missing (cmake --build $build)" >&2; exit 1; }
[[ -f $data/tinyshakespeare/input.txt && -f $data/ptb/ptb.train.txt ]] || { echo "distributed.sh: needs ../shared/data (tinyshakespeare, ptb)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "distributed.sh: mpirun missing (scripts/setup.sh test)" >&2; exit 1; }

char_args=("$data/tinyshakespeare/input.txt" --layers 2 --hidden 512 --embed 64 --batch 32 --seq-len 100)
ptb_args=("$data/ptb/ptb.train.txt" --level word --layers 2 --hidden 200 --batch 20 --seq-len 35 --valid "$data/ptb/ptb.valid.txt")

# run NAME CASE PROCS THREADS -> appends "CASE PROCS THREADS tok/s step_s comm_s" to $out/results
run() {
  local name=$1 case=$2 procs=$3 threads=$4 dir=$out/$1 args
  if [[ $case == char ]]; then args=("${char_args[@]}"); else args=("${ptb_args[@]}"); fi
  rm -rf "$dir"
  local cmd=("$recur" train "${args[@]}" --out "$dir" --steps "$steps" --log-every 10 --quiet --threads "$threads")
  if [[ $procs == 1 ]]; then
    OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads "${cmd[@]}" >/dev/null 2>&1
  else
    OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads mpirun --allow-run-as-root --oversubscribe -np "$procs" \
      "${cmd[@]}" >/dev/null 2>&1
  fi
  python3 - "$dir/metrics.jsonl" "$case" "$procs" "$threads" >>"$out/results" <<'PY'
import json, statistics, sys
path, case, procs, threads = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
train = [r for r in rows if r["type"] == "train"][1:]  # the first window holds the warm-up
tps = statistics.median(r["tokens_per_s"] for r in train)
comm = statistics.median(r.get("comm_wait_s") or 0.0 for r in train)
tokens_per_step = {"char": 32 * 100, "ptb": 20 * 35}[case]
print(case, procs, threads, tps, tokens_per_step / tps, comm)
PY
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); $(mpirun --version | head -1)" >&2
for ((r = 1; r <= rounds; ++r)); do
  for case in char ptb; do
    run "$case-1x1-$r" "$case" 1 1
    run "$case-1x2-$r" "$case" 1 2
    run "$case-2x1-$r" "$case" 2 1
  done
  if [[ ${SKIP_TORCH:-0} != 1 ]]; then
    for p in 1 2; do
      /usr/bin/python3 bench/ddp_torch.py --procs "$p" --steps "$steps" --text "$data/tinyshakespeare/input.txt" >>"$out/torch"
    done
  fi
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$out/results" "$out/torch" <<'PY'
import collections, os, statistics, sys
res = collections.defaultdict(list)
for line in open(sys.argv[1]):
    c, p, t, tps, step, comm = line.split()
    res[(c, int(p), int(t))].append((float(tps), float(step), float(comm)))
print("| case | processes x threads | tokens/s (median) | vs 1 x 1 | step ms | rank 0 waits for sums, ms/step |")
print("|---|---|---:|---:|---:|---:|")
for c in ("char", "ptb"):
    base = statistics.median(x[0] for x in res[(c, 1, 1)])
    for p, t in ((1, 1), (1, 2), (2, 1)):
        xs = res[(c, p, t)]
        tps = statistics.median(x[0] for x in xs)
        step = statistics.median(x[1] for x in xs) * 1e3
        comm = statistics.median(x[2] for x in xs) * 1e3
        name = {"char": "char LSTM 2x512", "ptb": "PTB small"}[c]
        print(f"| {name} | {p} x {t} | {tps:,.0f} | {tps / base:.2f} | {step:.1f} | {comm:.1f} |" if p > 1 else
              f"| {name} | {p} x {t} | {tps:,.0f} | {tps / base:.2f} | {step:.1f} | - |")
if os.path.exists(sys.argv[2]) and os.path.getsize(sys.argv[2]) > 0:
    t = collections.defaultdict(list)
    for line in open(sys.argv[2]):
        p, tps = line.split()
        t[int(p)].append(float(tps))
    b = statistics.median(t[1])
    print()
    print("| PyTorch 1.13 (anchor) | processes x threads | tokens/s (median) | vs 1 x 1 |")
    print("|---|---|---:|---:|")
    for p in sorted(t):
        m = statistics.median(t[p])
        print(f"| char LSTM 2x512, DDP gloo | {p} x 1 | {m:,.0f} | {m / b:.2f} |")
PY
