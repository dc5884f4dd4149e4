#!/usr/bin/env bash
# Builds the libFuzzer targets (RECUR_FUZZ, clang, AddressSanitizer + UndefinedBehaviorSanitizer)
# in build-fuzz and runs each for SECONDS (default 60) over its seed corpus (fuzz/corpus/<target>).
# An input that crashes, leaks, times out or runs out of memory is saved as
# fuzz/regressions/<target>/<kind>-<sha1>, which tests/test_fuzz_regressions.cpp then replays in
# every build; the script fails when any target found one. New coverage-increasing inputs go to
# build-fuzz/corpus/<target> (not to the tree). Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# Env: RECUR_FUZZ_BUILD_DIR (build-fuzz), RECUR_FUZZ_CXX (clang++), RECUR_FUZZ_JOBS (targets
# fuzzed at once; default the number of cores, each fuzzer is one process on one core),
# RECUR_FUZZ_TESTS=ON (also build the test suite in the same tree: scripts/test.sh shares one
# tree between scripts/sanitize.sh and this script).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# GNU nproc answers OMP_NUM_THREADS when it is set, and the suite runs with OMP_NUM_THREADS=1:
# count the cores without it, or ctest and the build would run one job at a time.
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
bash scripts/setup.sh fuzz
cxx="${RECUR_FUZZ_CXX:-$(command -v clang++ || command -v clang++-14)}"
seconds="${1:-60}"
shift || true
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: SECONDS must be a positive whole number, got '$seconds' (usage: scripts/fuzz.sh [SECONDS] [TARGET...])" >&2
  exit 2
fi
jobs="${RECUR_FUZZ_JOBS:-$cores}"
if ! [[ $jobs =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: RECUR_FUZZ_JOBS must be a positive whole number, got '$jobs'" >&2
  exit 2
fi
build_dir="${RECUR_FUZZ_BUILD_DIR:-build-fuzz}"
tests="${RECUR_FUZZ_TESTS:-OFF}"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
start=$(date +%s)
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" -DRECUR_FUZZ=ON \
  -DRECUR_BUILD_TESTS="$tests" -DRECUR_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
cmake --build "$build_dir" -j"$cores" --target fuzz_all
built=$(date +%s)
echo "fuzz.sh: build took $((built - start)) s"
[[ -z ${RECUR_STAGE_LOG:-} ]] || echo "fuzz build $((built - start))" >> "$RECUR_STAGE_LOG"

targets=("$@")
if ((${#targets[@]} == 0)); then
  for exe in "$build_dir"/fuzz/fuzz_*; do
    [[ -f $exe && -x $exe ]] && targets+=("${exe##*/fuzz_}")
  done
fi
for t in "${targets[@]}"; do
  if [[ ! -x $build_dir/fuzz/fuzz_$t ]]; then
    echo "fuzz.sh: no fuzz target '$t' (fuzz/CMakeLists.txt lists them)" >&2
    exit 2
  fi
done
# As scripts/sanitize.sh: the first report ends the run; lsan.supp covers system libraries only.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1"
export LSAN_OPTIONS="suppressions=$root/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

# One target: its exit status goes to $build_dir/fuzz_<t>.status. The regression folder is the
# target's own, so targets running side by side cannot see each other's findings.
fuzz_one() {
  local t=$1 work="$build_dir/corpus/$1" found="fuzz/regressions/$1" status=0
  mkdir -p "$work" "$found"
  # -timeout: a reader is linear in its input, so 10 s on one input (max_len a few KB) is a hang.
  # -rss_limit_mb / -malloc_limit_mb: an allocation sized by a field of the file is a finding.
  "$build_dir/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -artifact_prefix="$found/" -print_final_stats=1 "$work" "fuzz/corpus/$t" > "$build_dir/fuzz_$t.log" 2>&1 || status=$?
  echo "$status" > "$build_dir/fuzz_$t.status"
}

declare -A before
for t in "${targets[@]}"; do
  mkdir -p "fuzz/regressions/$t"
  before[$t]=$(ls "fuzz/regressions/$t" | wc -l)
  rm -f "$build_dir/fuzz_$t.status"
done
# RECUR_FUZZ_JOBS targets at a time (two on CI's two cores): 17 targets x 60 s take 9 minutes
# instead of 17. Each fuzzer is single-threaded, so two never compete for one core.
running=0
for t in "${targets[@]}"; do
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
  fuzz_one "$t" &
  running=$((running + 1))
done
wait || true

failed=()
for t in "${targets[@]}"; do
  log="$build_dir/fuzz_$t.log"
  status=$(cat "$build_dir/fuzz_$t.status" 2>/dev/null || echo '?')
  after=$(ls "fuzz/regressions/$t" | wc -l)
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo '?')
  echo "fuzz.sh: $t: $runs runs, coverage $cov edges, exit $status, $((after - ${before[$t]})) new regression file(s)"
  if [[ $status != 0 ]] || ((after != ${before[$t]})); then
    failed+=("$t")
    tail -40 "$log"
  fi
done
echo "fuzz.sh: fuzzing ${#targets[@]} target(s) for $seconds s each, $jobs at a time, took $(($(date +%s) - built)) s"
[[ -z ${RECUR_STAGE_LOG:-} ]] || echo "fuzzing $(($(date +%s) - built))" >> "$RECUR_STAGE_LOG"
if ((${#failed[@]})); then
  echo "fuzz.sh: findings in ${failed[*]}: inputs in fuzz/regressions/<target>/, logs in $build_dir/fuzz_<target>.log" >&2
  exit 1
fi
