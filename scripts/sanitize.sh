#!/usr/bin/env bash
# Builds recur with AddressSanitizer and UndefinedBehaviorSanitizer (RECUR_SANITIZE) in
# build-asan and runs the whole test suite there; any sanitizer report fails its test.
# Usage: scripts/sanitize.sh [extra ctest arguments]. Env: RECUR_ASAN_BUILD_DIR (build-asan),
# CXX (the compiler: gcc by default, clang works too). See docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/setup.sh test
bash scripts/setup.sh browser  # the suite's `recur show` page test, as scripts/test.sh
build_dir="${RECUR_ASAN_BUILD_DIR:-build-asan}"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
start=$(date +%s)
# Benchmarks are not part of the suite; RelWithDebInfo keeps the tests' speed and gives
# sanitizer reports file:line.
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRECUR_SANITIZE=ON -DRECUR_BUILD_BENCH=OFF \
  "${launcher[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
built=$(date +%s)
echo "sanitize.sh: build took $((built - start)) s"
# halt_on_error / abort_on_error: the first report ends the process, so ctest sees a failure.
# detect_leaks: LeakSanitizer at exit; sanitizers/lsan.supp lists the system libraries' own
# one-time allocations (each with its reason), never recur's code.
# detect_stack_use_after_return is left out: with it every recur CLI run (gcc 12 build) dies at
# start-up in CLI11's IsMember({...}) (apps/cmd_show.cpp --gate); not yet traced to recur or CLI11.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1"
export LSAN_OPTIONS="suppressions=$root/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
status=0
ctest --test-dir "$build_dir" --output-on-failure -j"$(nproc)" "$@" || status=$?
echo "sanitize.sh: tests took $(($(date +%s) - built)) s"
exit $status
