#!/usr/bin/env bash
# Installs what is missing, builds recur and runs the whole test suite (the README's test
# command and what CI runs). Usage: scripts/test.sh [extra ctest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
bash scripts/setup.sh browser  # tests/test_cli_diag.cpp opens `recur show`'s page in headless Chromium
build_dir="${RECUR_BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
# One thread per test process (OpenBLAS and oneDNN's OpenMP pool): ctest runs tests in
# parallel, and tiny test matrices only lose from threading.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
ctest --test-dir "$build_dir" --output-on-failure -j"$(nproc)" "$@"
