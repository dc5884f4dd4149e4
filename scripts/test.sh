#!/usr/bin/env bash
# The README's test command and what CI runs (.ci/run): installs what is missing, then
#   1. the Release build and the whole test suite (build/),
#   2. that build installed into a temporary prefix and used by two consumer projects, one with
#      find_package(recur), one with pkg-config (scripts/install_check.sh, tests/consumers/),
#   3. the whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer
#      (scripts/sanitize.sh, clang, build-san/; any report fails its test),
#   4. every libFuzzer target for 60 s, two at a time on two cores (scripts/fuzz.sh, the same
#      build-san/ tree; any finding fails),
# and prints how long each stage took. Fails at the first stage that fails.
# Usage: scripts/test.sh [extra ctest arguments, for both suites]
# Env: RECUR_BUILD_DIR (build), RECUR_SAN_BUILD_DIR (build-san), RECUR_QUICK=1 (developers only:
# stage 1 alone; refused when CI is set, since CI runs everything).
set -euo pipefail
cd "$(dirname "$0")/.."
# GNU nproc answers OMP_NUM_THREADS when it is set, and the suite runs with OMP_NUM_THREADS=1:
# count the cores without it, or ctest and the build would run one job at a time.
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
quick="${RECUR_QUICK:-0}"
if [[ $quick != 0 && $quick != 1 ]]; then
  echo "test.sh: RECUR_QUICK must be 0 or 1, got '$quick'" >&2
  exit 2
fi
if [[ $quick == 1 && -n ${CI:-} ]]; then
  echo "test.sh: RECUR_QUICK=1 skips the sanitizer suite and the fuzzers; CI (CI=$CI) must run them" >&2
  exit 2
fi

# Stage times: each stage appends "name seconds" here (scripts/sanitize.sh and scripts/fuzz.sh
# add their own build and run stages), and the table is printed at the end, also on failure.
export RECUR_STAGE_LOG
RECUR_STAGE_LOG=$(mktemp)
total_start=$(date +%s)
report() {
  local status=$? line
  echo "test.sh: stage times (s):"
  # A stage name has spaces ("release build"): the seconds are the last field.
  while read -r line; do printf '  %-26s %6d\n' "${line% *}" "${line##* }"; done < "$RECUR_STAGE_LOG"
  printf '  %-26s %6d%s\n' total $(($(date +%s) - total_start)) "$( ((status == 0)) || echo "  (FAILED, exit $status)")"
  rm -f "$RECUR_STAGE_LOG"
  exit "$status"
}
trap report EXIT
since=$(date +%s)
stage() {  # stage NAME: records the time since the previous stage ended
  local now
  now=$(date +%s)
  echo "$1 $((now - since))" >> "$RECUR_STAGE_LOG"
  since=$now
}

bash scripts/setup.sh test
bash scripts/setup.sh browser  # tests/test_cli_diag.cpp opens `recur show`'s page in headless Chromium
[[ $quick == 1 ]] || bash scripts/setup.sh fuzz
stage "packages"

build_dir="${RECUR_BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j"$cores"
stage "release build"
# One thread per test process (OpenBLAS and oneDNN's OpenMP pool): ctest runs tests in
# parallel, and tiny test matrices only lose from threading.
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 ctest --test-dir "$build_dir" --output-on-failure -j"$cores" "$@"
stage "release suite"
if [[ $quick == 1 ]]; then
  echo "test.sh: RECUR_QUICK=1: install check, sanitizer suite and fuzzers skipped"
  exit 0
fi
bash scripts/install_check.sh "$build_dir"
stage "install check"

# One clang tree for both: libraries with -fsanitize=address,undefined,fuzzer-no-link, the tests
# and the CLI linked with the sanitizers only, the fuzz targets with libFuzzer (CMakeLists.txt).
# Building it once instead of a gcc sanitizer tree and a clang fuzz tree saves one whole build.
san_dir="${RECUR_SAN_BUILD_DIR:-build-san}"
RECUR_ASAN_BUILD_DIR="$san_dir" RECUR_ASAN_FUZZ=1 bash scripts/sanitize.sh "$@"
since=$(date +%s)
RECUR_FUZZ_BUILD_DIR="$san_dir" RECUR_FUZZ_TESTS=ON bash scripts/fuzz.sh 60
since=$(date +%s)
