#!/usr/bin/env bash
# Builds recur with AddressSanitizer and UndefinedBehaviorSanitizer (RECUR_SANITIZE) in
# build-asan and runs the whole test suite there; any sanitizer report fails its test.
# Usage: scripts/sanitize.sh [extra ctest arguments]. Env: RECUR_ASAN_BUILD_DIR (build-asan),
# CXX (the compiler: clang++ by default, g++ works too), RECUR_ASAN_FUZZ=1 (configure the tree as
# scripts/fuzz.sh does with RECUR_FUZZ_TESTS=ON: clang, RECUR_FUZZ=ON, so the same tree then
# holds the fuzz targets too; scripts/test.sh uses this). See docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# GNU nproc answers OMP_NUM_THREADS when it is set, and the suite runs with OMP_NUM_THREADS=1:
# count the cores without it, or ctest and the build would run one job at a time.
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
bash scripts/setup.sh test
bash scripts/setup.sh fuzz  # clang 14 and its sanitizer runtimes
bash scripts/setup.sh browser  # the suite's `recur show` page test, as scripts/test.sh
build_dir="${RECUR_ASAN_BUILD_DIR:-build-asan}"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cxx="${CXX:-$(command -v clang++ || command -v clang++-14)}"
# The Python module is not built here (CMakeLists.txt turns RECUR_PYTHON off under the
# sanitizers: an ASan extension needs the runtime preloaded into the interpreter); its tests
# run in the Release suite.
mode=(-DCMAKE_CXX_COMPILER="$cxx" -DRECUR_SANITIZE=ON)
if [[ ${RECUR_ASAN_FUZZ:-0} == 1 ]]; then
  # Exactly scripts/fuzz.sh's configuration (with RECUR_FUZZ_TESTS=ON), so that its configure
  # and build in the same tree are no-ops.
  cxx="${RECUR_FUZZ_CXX:-$(command -v clang++ || command -v clang++-14)}"
  mode=(-DCMAKE_CXX_COMPILER="$cxx" -DRECUR_FUZZ=ON -DRECUR_BUILD_TESTS=ON)
elif [[ ${RECUR_ASAN_FUZZ:-0} != 0 ]]; then
  echo "sanitize.sh: RECUR_ASAN_FUZZ must be 0 or 1, got '$RECUR_ASAN_FUZZ'" >&2
  exit 2
fi
start=$(date +%s)
# Benchmarks are not part of the suite; RelWithDebInfo keeps the tests' speed and gives
# sanitizer reports file:line.
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${mode[@]}" -DRECUR_BUILD_BENCH=OFF \
  "${launcher[@]}" >/dev/null
cmake --build "$build_dir" -j"$cores"
built=$(date +%s)
echo "sanitize.sh: build took $((built - start)) s"
[[ -z ${RECUR_STAGE_LOG:-} ]] || echo "sanitizer build $((built - start))" >> "$RECUR_STAGE_LOG"
# halt_on_error / abort_on_error: the first report ends the process, so ctest sees a failure.
# detect_leaks: LeakSanitizer at exit; sanitizers/lsan.supp lists the system libraries' own
# one-time allocations (each with its reason), never recur's code.
# detect_stack_use_after_return: on under clang. Under gcc 12 it stays off: there every recur
# CLI run died at start-up in CLI11's IsMember({...}) (apps/cmd_show.cpp --gate), which the clang
# build runs clean and which is not traced further (docs/reliability.md).
uar=0
[[ $("$cxx" --version) == *clang* ]] && uar=1
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=$uar"
export LSAN_OPTIONS="suppressions=$root/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
status=0
ctest --test-dir "$build_dir" --output-on-failure -j"$cores" "$@" || status=$?
echo "sanitize.sh: tests took $(($(date +%s) - built)) s"
[[ -z ${RECUR_STAGE_LOG:-} ]] || echo "sanitizer suite $(($(date +%s) - built))" >> "$RECUR_STAGE_LOG"
exit $status
