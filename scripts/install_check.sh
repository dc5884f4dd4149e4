#!/usr/bin/env bash
# Installs a built tree into a temporary prefix and uses it as another project would (issue 14):
# checks the installed layout (headers, librecur.so and its SONAME, the static layer libraries,
# the CMake package, the pkg-config files, the CLI, its man page and bash completion), then builds
# tests/consumers/lstm_check.cpp four ways (find_package(recur) and pkg-config, each against the
# shared and the static libraries) and runs each. Any failure exits non-zero with one line.
# Usage: scripts/install_check.sh [BUILD_DIR]   (default: $RECUR_BUILD_DIR or build; built already)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build_dir="${1:-${RECUR_BUILD_DIR:-build}}"
fail() { echo "install_check: $*" >&2; exit 1; }
[[ -f $build_dir/CMakeCache.txt ]] || fail "$build_dir: not a configured build tree (expected $build_dir/CMakeCache.txt)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build_dir" --prefix "$prefix" >/dev/null || fail "cmake --install $build_dir --prefix $prefix failed"

libdir_rel=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
libdir=$prefix/${libdir_rel:-lib}
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
[[ -n $version ]] || fail "$build_dir/CMakeCache.txt: no CMAKE_PROJECT_VERSION"
for f in include/recur/version.h include/recur/core/rnn.h include/recur/tasks/tasks.h \
         bin/recur share/bash-completion/completions/recur; do
  [[ -e $prefix/$f ]] || fail "$prefix/$f: not installed"
done
for f in "librecur.so.$version" librecur.so librecur_core.a librecur_music.a cmake/recur/recurConfig.cmake \
         cmake/recur/recurConfigVersion.cmake pkgconfig/recur.pc pkgconfig/recur-static.pc; do
  [[ -e $libdir/$f ]] || fail "$libdir/$f: not installed"
done
soname=$(readelf -d "$libdir/librecur.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == "librecur.so.$version" ]] || fail "librecur.so: SONAME '$soname', expected librecur.so.$version"
got=$("$prefix/bin/recur" --version)
[[ $got == "recur $version" ]] || fail "recur --version printed '$got', expected 'recur $version'"
grep -q "RECUR_VERSION_STRING \"$version\"" "$prefix/include/recur/version.h" || fail "installed version.h does not say $version"
if command -v help2man >/dev/null; then
  man=$prefix/share/man/man1/recur.1
  [[ -f $man ]] || fail "$man: not installed although help2man is present"
  grep -q '^\.TH RECUR' "$man" || fail "$man: no .TH RECUR header"
  grep -q 'music\\-stats' "$man" || fail "$man: the subcommand list of recur --help is missing"
fi
# The completion's subcommands are recur --help's, and completing "recur tr" offers train, translate.
help_subs=$("$prefix/bin/recur" --help | sed -n '/^Subcommands:/,$p' | sed -n 's/^  \([a-z-]*\) .*/\1/p' | sort | tr '\n' ' ')
completion=$prefix/share/bash-completion/completions/recur
# shellcheck disable=SC2016
comp_subs=$(bash -c 'source "$1"; COMP_WORDS=(recur ""); COMP_CWORD=1; _recur; printf "%s\n" "${COMPREPLY[@]}"' _ "$completion" | sort | tr '\n' ' ')
[[ $help_subs == "$comp_subs" ]] || fail "$completion: completes '$comp_subs', recur --help lists '$help_subs'"
# shellcheck disable=SC2016
opts=$(bash -c 'source "$1"; COMP_WORDS=("$2" sample --se); COMP_CWORD=2; _recur; echo "${COMPREPLY[@]}"' _ "$completion" "$prefix/bin/recur")
[[ " $opts " == *" --seed "* ]] || fail "$completion: 'recur sample --se' completes '$opts', expected --seed among them"

run_consumer() {  # run_consumer NAME BINARY [LD_LIBRARY_PATH]: runs it, and checks which recur it linked
  local name=$1 bin=$2 out
  out=$(LD_LIBRARY_PATH=${3:-} "$bin") || fail "$name: $bin failed: $out"
  [[ $out == "recur $version: "* ]] || fail "$name: unexpected output: $out"
  # ldd into a variable: `ldd | grep -q` fails under pipefail when grep stops reading early.
  local libs
  libs=$(LD_LIBRARY_PATH=${3:-} ldd "$bin")
  if [[ $name == *shared* ]]; then
    [[ $libs == *"librecur.so.$version => $libdir/librecur.so.$version"* ]] || fail "$name: does not load $libdir/librecur.so.$version"
  else
    [[ $libs != *librecur* ]] || fail "$name: linked statically but needs librecur.so"
  fi
  echo "install_check: $name: $out"
}
consumers=$src/tests/consumers
for kind in shared static; do
  static=OFF
  [[ $kind == static ]] && static=ON
  cmake -S "$consumers/cmake" -B "$tmp/cmake-$kind" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
        -Drecur_USE_STATIC_LIBS=$static >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; fail "find_package consumer ($kind): configure failed"; }
  cmake --build "$tmp/cmake-$kind" >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; fail "find_package consumer ($kind): build failed"; }
  run_consumer "find_package $kind" "$tmp/cmake-$kind/lstm_check"
  pkg=recur
  [[ $kind == static ]] && pkg=recur-static
  mkdir -p "$tmp/pc-$kind"
  PKG_CONFIG_PATH=$libdir/pkgconfig make -s -C "$consumers/pkgconfig" OUT="$tmp/pc-$kind" PKG=$pkg >"$tmp/log" 2>&1 ||
    { cat "$tmp/log" >&2; fail "pkg-config consumer ($pkg): build failed"; }
  run_consumer "pkg-config $pkg ($kind)" "$tmp/pc-$kind/lstm_check" "$libdir"
done
echo "install_check: OK (recur $version installed into a temporary prefix; 4 consumers built and run)"
