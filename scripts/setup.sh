#!/usr/bin/env bash
# Installs every Debian package recur needs, only when missing (idempotent; run as root
# on Debian 12). Usage: scripts/setup.sh [build|test|reference|bench|music|browser|fuzz|recipes|all]
#   build      compiler, CMake, OpenBLAS (OpenMP build), nlohmann-json, CLI11, GoogleTest, Google Benchmark,
#              oneDNN (the float recurrent core's fast path; optional for CMake), Open MPI
#              (data-parallel training, docs/distributed.md; optional for CMake: RECUR_MPI),
#              help2man (the man page `cmake --install` puts in share/man/man1; optional for CMake)
#   test       build + the data used by the README's main job (fortunes-min, fortunes) + the Python module's
#              build and test packages (pybind11, numpy, pytest: docs/python.md)
#   reference  build + python3-torch, to regenerate the golden files in tests/golden/
#   bench      reference + oneDNN, for the side-by-side benchmarks
#   browser    build + headless Chromium for the `recur show` page test
#   fuzz       build + clang 14 with its sanitizer and libFuzzer runtimes and LLVM's OpenMP
#              (find_package(OpenMP) under clang), for scripts/fuzz.sh; scripts/sanitize.sh
#              needs only `build` (g++ ships AddressSanitizer and UBSan)
#   recipes    build + Debian's English dictionaries (dict-gcide, dict-wn, dict-foldoc: 8 M words of
#              text), which scripts/recipe.sh's NER and sentiment recipes learn word vectors from
#              besides fortunes, tiny Shakespeare and PTB (they pull in Debian's dictd server), and
#              Debian's English thesaurus (mythes-en-us), which the sentiment recipe adds
#   music      build + FluidSynth and its General MIDI soundfont (recur sample --wav-out) and
#              abcmidi (abc2midi: ABC folk tunes as training input), see docs/music.md
#   all        every package of the targets above
set -euo pipefail
what="${1:-test}"
pkgs=(g++ cmake make pkg-config libopenblas-dev libopenblas0-openmp nlohmann-json3-dev
      libcli11-dev libgtest-dev googletest libbenchmark-dev fortunes-min fortunes libsmf-dev midicsv
      gnuplot-nox fonts-dejavu-core libdnnl-dev openmpi-bin libopenmpi-dev help2man)
# The Python module (python/, RECUR_PYTHON) and its pytest suite, which ctest runs.
test_pkgs=(python3-dev pybind11-dev python3-pybind11 python3-numpy python3-pytest python3-setuptools python3-wheel python3-pip python3-venv)
torch_pkgs=(python3-torch python3-numpy)
music_pkgs=(fluidsynth fluid-soundfont-gm abcmidi)
recipes_pkgs=(dict-gcide dict-wn dict-foldoc mythes-en-us)
browser_pkgs=(chromium)  # headless Chromium: the `recur show` page test (tests/test_cli_diag.cpp)
# -fsanitize=fuzzer links libclang-rt-14-dev's libclang_rt.fuzzer; libfuzzer-14-dev (a standalone
# libFuzzer.a) is not needed.
fuzz_pkgs=(clang-14 libclang-rt-14-dev libomp-14-dev)
case "$what" in
  build) ;;
  test) pkgs+=("${test_pkgs[@]}") ;;
  reference) pkgs+=("${torch_pkgs[@]}") ;;
  bench) pkgs+=("${torch_pkgs[@]}") ;;  # libdnnl-dev is in every target's list
  music) pkgs+=("${music_pkgs[@]}") ;;
  browser) pkgs+=("${browser_pkgs[@]}") ;;
  fuzz) pkgs+=("${fuzz_pkgs[@]}") ;;
  recipes) pkgs+=("${recipes_pkgs[@]}") ;;
  all) pkgs+=("${test_pkgs[@]}" "${torch_pkgs[@]}" "${music_pkgs[@]}" "${browser_pkgs[@]}" "${fuzz_pkgs[@]}" "${recipes_pkgs[@]}") ;;
  *) echo "setup.sh: unknown target '$what' (expected build, test, reference, bench, music, browser, fuzz, recipes or all)" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: missing packages (${missing[*]}); run as root or install them with apt-get" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
