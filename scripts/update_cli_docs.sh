#!/usr/bin/env bash
# Regenerates the command reference of docs/cli.md from the commands' own --help (issue 18):
# replaces everything between the two marker lines below with `recur help-markdown`.
# tests/test_cli_docs.cpp fails while the committed docs/cli.md differs from that output; run
# this after changing a command's options or help, and commit the result.
# Usage: scripts/update_cli_docs.sh [BUILD_DIR]   (default: $RECUR_BUILD_DIR or build; built already)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-${RECUR_BUILD_DIR:-build}}"
recur="$build_dir/apps/recur"
doc=docs/cli.md
begin='<!-- BEGIN GENERATED: recur help-markdown (scripts/update_cli_docs.sh) -->'
end='<!-- END GENERATED -->'
fail() { echo "update_cli_docs: $*" >&2; exit 1; }
[[ -x $recur ]] || fail "$recur: not built (expected the recur binary of build tree $build_dir)"
grep -qxF "$begin" "$doc" || fail "$doc: no line '$begin'"
grep -qxF "$end" "$doc" || fail "$doc: no line '$end'"
generated=$(mktemp)
out=$(mktemp "$doc.tmp.XXXXXX")
trap 'rm -f "$generated" "$out"' EXIT
"$recur" help-markdown > "$generated" || fail "$recur help-markdown failed"
# Before the begin marker, the marker, the generated text, the end marker and what follows it.
awk -v begin="$begin" -v end="$end" -v gen="$generated" '
  $0 == begin { print; while ((getline line < gen) > 0) print line; skip = 1; next }
  $0 == end { skip = 0 }
  !skip { print }' "$doc" > "$out"
# Written whole and renamed over the file, so an interrupted run leaves the old one.
chmod 644 "$out"
mv "$out" "$doc"
echo "update_cli_docs: $doc regenerated from $recur help-markdown"
