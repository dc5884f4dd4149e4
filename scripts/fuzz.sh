#!/usr/bin/env bash
# Builds the libFuzzer targets (RECUR_FUZZ, clang, AddressSanitizer + UndefinedBehaviorSanitizer)
# in build-fuzz and runs each for SECONDS (default 60) over its seed corpus (fuzz/corpus/<target>).
# An input that crashes, leaks, times out or runs out of memory is saved as
# fuzz/regressions/<target>/<kind>-<sha1>, which tests/test_fuzz_regressions.cpp then replays in
# every build; the script fails when any target found one. New coverage-increasing inputs go to
# build-fuzz/corpus/<target> (not to the tree). Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/setup.sh fuzz
cxx="${RECUR_FUZZ_CXX:-$(command -v clang++ || command -v clang++-14)}"
seconds="${1:-60}"
shift || true
build_dir="${RECUR_FUZZ_BUILD_DIR:-build-fuzz}"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
start=$(date +%s)
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" -DRECUR_FUZZ=ON \
  -DRECUR_BUILD_TESTS=OFF -DRECUR_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target fuzz_all
built=$(date +%s)
echo "fuzz.sh: build took $((built - start)) s"

targets=("$@")
if ((${#targets[@]} == 0)); then
  for exe in "$build_dir"/fuzz/fuzz_*; do
    [[ -f $exe && -x $exe ]] && targets+=("${exe##*/fuzz_}")
  done
fi
# As scripts/sanitize.sh: the first report ends the run; lsan.supp covers system libraries only.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:strict_string_checks=1"
export LSAN_OPTIONS="suppressions=$root/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
failed=()
for t in "${targets[@]}"; do
  work="$build_dir/corpus/$t"
  found="fuzz/regressions/$t"
  mkdir -p "$work" "$found"
  before=$(ls "$found" | wc -l)
  # -timeout: a reader is linear in its input, so 10 s on one input (max_len a few KB) is a hang.
  # -rss_limit_mb / -malloc_limit_mb: an allocation sized by a field of the file is a finding.
  status=0
  "$build_dir/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -artifact_prefix="$found/" -print_final_stats=1 "$work" "fuzz/corpus/$t" > "$build_dir/fuzz_$t.log" 2>&1 || status=$?
  after=$(ls "$found" | wc -l)
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build_dir/fuzz_$t.log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$build_dir/fuzz_$t.log" | tail -1 | grep -o '[0-9]*$' || echo '?')
  echo "fuzz.sh: $t: $runs runs, coverage $cov edges, exit $status, $((after - before)) new regression file(s)"
  if ((status != 0 || after != before)); then
    failed+=("$t")
    tail -40 "$build_dir/fuzz_$t.log"
  fi
done
echo "fuzz.sh: fuzzing took $(($(date +%s) - built)) s"
if ((${#failed[@]})); then
  echo "fuzz.sh: findings in ${failed[*]}: inputs in fuzz/regressions/<target>/, logs in $build_dir/fuzz_<target>.log" >&2
  exit 1
fi
