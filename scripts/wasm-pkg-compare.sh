#!/usr/bin/env bash
# Compare a freshly built browser package with the committed one, byte for byte.
#
#   scripts/wasm-pkg-compare.sh COMMITTED REBUILT     (e.g. wasm-client/pkg target/wasm-pkg-check)
#
# Every file of either directory must exist in the other with the same bytes (`.gitkeep`
# aside). Prints each file that differs, is missing or is extra, and exits 1 if any does.
# scripts/build-wasm.sh is reproducible byte for byte on the same toolchain (paths are
# remapped, nothing embeds a time), so any difference means the committed package was not
# built from these sources with these tools: rebuild it with scripts/build-wasm.sh and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
committed=${1:?usage: wasm-pkg-compare.sh COMMITTED_DIR REBUILT_DIR}
rebuilt=${2:?usage: wasm-pkg-compare.sh COMMITTED_DIR REBUILT_DIR}
for d in "$committed" "$rebuilt"; do
  [ -d "$d" ] || { echo "error: $d is not a directory" >&2; exit 1; }
done

files() { (cd "$1" && find . -type f ! -name .gitkeep | sed 's|^\./||' | sort); }
bad=0
while read -r f; do
  if [ ! -f "$committed/$f" ]; then
    echo "wasm package: $f is in the rebuilt package only ($rebuilt/$f)" >&2; bad=1
  elif [ ! -f "$rebuilt/$f" ]; then
    echo "wasm package: $f is in the committed package only ($committed/$f)" >&2; bad=1
  elif ! cmp -s "$committed/$f" "$rebuilt/$f"; then
    echo "wasm package: $f differs: $committed/$f ($(stat -c %s "$committed/$f") B," \
      "sha256 $(sha256sum < "$committed/$f" | cut -c1-16)) vs $rebuilt/$f ($(stat -c %s "$rebuilt/$f") B," \
      "sha256 $(sha256sum < "$rebuilt/$f" | cut -c1-16))" >&2
    bad=1
  fi
done < <({ files "$committed"; files "$rebuilt"; } | sort -u)

if [ "$bad" -ne 0 ]; then
  echo "error: $committed is not what its sources build to. Rebuild it with scripts/build-wasm.sh" >&2
  echo "       and commit $committed." >&2
  exit 1
fi
echo "wasm package: every file of $rebuilt equals $committed ($(files "$committed" | wc -l) files)"
