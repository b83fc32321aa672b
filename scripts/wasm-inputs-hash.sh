#!/usr/bin/env bash
# Hash of everything the committed browser package (wasm-client/pkg) is built from.
#
#   scripts/wasm-inputs-hash.sh                  print the hash
#   scripts/wasm-inputs-hash.sh --check [PKG]    exit 1 unless PKG/INPUTS.sha256 (default
#                                                wasm-client/pkg) matches the sources
#
# Inputs: protocol/src, protocol/Cargo.toml, wasm-client/src, wasm-client/Cargo.toml,
# wasm-client/README.md (copied into the package), scripts/build-wasm.sh, and the part of
# Cargo.lock that the wasm client resolves to (its [[package]] entries and those of its
# transitive dependencies), so a dependency added to the gateway does not make the
# package stale, while any version change under the client does.
# Only coreutils and awk: no Rust or wasm toolchain needed.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

# The [[package]] blocks of Cargo.lock reachable from garou-wasm-client.
lock_slice() {
  awk '
    function flush() {
      if (name != "") { n++; nm[n] = name; ver[n] = version; txt[n] = block; deps[n] = dl
        cnt[name]++; byfull[name " " version] = n; byname[name] = n }
      name = ""; version = ""; block = ""; dl = ""; indeps = 0
    }
    /^\[\[package\]\]/ { flush(); inpkg = 1; block = $0 "\n"; next }
    /^\[/ { flush(); inpkg = 0; next }
    inpkg {
      block = block $0 "\n"
      if ($0 ~ /^name = /)    { name = $3; gsub(/"/, "", name) }
      if ($0 ~ /^version = /) { version = $3; gsub(/"/, "", version) }
      if ($0 ~ /^dependencies = \[/) { indeps = 1; next }
      if (indeps && $0 ~ /^\]/) { indeps = 0; next }
      if (indeps) { d = $0; gsub(/^ *"|",?$/, "", d); dl = dl d "\n" }
    }
    END {
      flush()
      root = byname["garou-wasm-client"]
      if (root == "") { print "garou-wasm-client is not in Cargo.lock" > "/dev/stderr"; exit 1 }
      queue[1] = root; seen[root] = 1; head = 1; tail = 1
      while (head <= tail) {
        i = queue[head++]
        m = split(deps[i], ds, "\n")
        for (k = 1; k <= m; k++) {
          if (ds[k] == "") continue
          split(ds[k], f, " ")
          j = (f[2] == "") ? byname[f[1]] : byfull[f[1] " " f[2]]
          if (j != "" && !seen[j]) { seen[j] = 1; queue[++tail] = j }
        }
      }
      for (i = 1; i <= n; i++) if (seen[i]) printf "%s", txt[i]
    }
  ' Cargo.lock
}

inputs_hash() {
  {
    find protocol/src wasm-client/src -type f | sort
    printf '%s\n' protocol/Cargo.toml wasm-client/Cargo.toml wasm-client/README.md scripts/build-wasm.sh
  } | while read -r f; do
    printf '%s %s\n' "$(sha256sum < "$f" | cut -d' ' -f1)" "$f"
  done
  printf '%s Cargo.lock(garou-wasm-client)\n' "$(lock_slice | sha256sum | cut -d' ' -f1)"
}

hash=$(inputs_hash | sha256sum | cut -d' ' -f1)

if [ "${1:-}" = "--check" ]; then
  pkg=${2:-wasm-client/pkg}
  recorded=$(cat "$pkg/INPUTS.sha256" 2>/dev/null || echo missing)
  if [ "$recorded" != "$hash" ]; then
    echo "error: $pkg is stale: built from inputs $recorded, sources are now $hash." >&2
    echo "       Rebuild it with scripts/build-wasm.sh and commit $pkg." >&2
    exit 1
  fi
  echo "$pkg matches its sources ($hash)"
  exit 0
fi
echo "$hash"
