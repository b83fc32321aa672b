#!/usr/bin/env bash
# Build the browser client (wasm-client/) into an npm package directory.
#
#   scripts/build-wasm.sh [OUT_DIR]          (default wasm-client/pkg)
#
# Uses Debian's rustc-web 1.96 with -Zbuild-std for wasm32 (rustup's toolchains here have
# no wasm32 target), wasm-bindgen --target web, and wasm-opt -Os from npm binaryen 132.
# Installs what it needs, once: the apt packages, wasm-bindgen-cli 0.2.130 (~10 min the
# first time), binaryen under tools/. The Debian toolchain is put first on PATH inside this
# script only; the rest of the workspace keeps building with the rustup toolchain.
# Writes OUT_DIR/INPUTS.sha256 (scripts/wasm-inputs-hash.sh) so tests can tell when the
# committed package no longer matches its sources.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-wasm-client/pkg}
WASM_BINDGEN_VERSION=0.2.130
BINARYEN_VERSION=132.0.0
NAME=garou_wasm_client
source scripts/lib.sh

start=$(date +%s)
step() { echo "== $* ($(( $(date +%s) - start )) s)"; }

# ---------------------------------------------------------------- tools (idempotent)
step "tools"
apt_need rustc-web cargo-web rust-web-src rust-web-llvm lld-22
[ -x "$HOME/.cargo/bin/wasm-bindgen" ] && export PATH="$PATH:$HOME/.cargo/bin"
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  echo "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 10 minutes on 2 cores)"
  # Whichever cargo is first on PATH (rustup's or Debian's 1.96) builds it. No --locked:
  # one locked dependency is missing from the registry here.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  export PATH="$PATH:$HOME/.cargo/bin"
fi
WASM_BINDGEN=$(command -v wasm-bindgen)
WASM_OPT=tools/node_modules/.bin/wasm-opt
if ! { [ -x "$WASM_OPT" ] && grep -q "\"version\": \"$BINARYEN_VERSION\"" tools/node_modules/binaryen/package.json 2>/dev/null; }; then
  # Not Debian's binaryen 108: its -Os output fails at init (WebAssembly.Table.set).
  mkdir -p tools
  npm install --prefix tools --no-save --no-package-lock --no-audit --no-fund "binaryen@$BINARYEN_VERSION"
fi

# ---------------------------------------------------------------- cargo build (wasm32)
step "cargo build (Debian rustc-web, -Zbuild-std)"
(
  export PATH="/usr/bin:$PATH"   # Debian's cargo/rustc 1.96 first, for this build only
  export RUSTC_BOOTSTRAP=1       # lets stable 1.96 take -Zbuild-std
  # WebTransport bindings are behind web_sys_unstable_apis; paths are remapped so the
  # package does not depend on (or reveal) where it was built.
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="--cfg=web_sys_unstable_apis \
--remap-path-prefix=$ROOT=garou --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}/registry/src=crates"
  # Size-oriented release settings for this build only (the workspace profile is untouched).
  export CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_OPT_LEVEL=s
  export CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
  cargo build -p garou-wasm-client --release --target wasm32-unknown-unknown \
    -Zbuild-std=std,panic_abort --target-dir target/wasm
)
WASM=target/wasm/wasm32-unknown-unknown/release/$NAME.wasm

# ---------------------------------------------------------------- bindgen + opt
step "wasm-bindgen --target web"
find "$OUT" -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} + 2>/dev/null || true
mkdir -p "$OUT"
"$WASM_BINDGEN" --target web --out-dir "$OUT" --out-name "$NAME" "$WASM"
bindgen_size=$(stat -c %s "$OUT/${NAME}_bg.wasm")
# GarouError (an Error subclass, so it is JS: src/web/js.rs inline_js) is exported from
# the entry point. The .d.ts declares it (typescript_custom_section).
snippet=$(cd "$OUT" && grep -rl "class GarouError extends Error" snippets | sort | head -n1)
[ -n "$snippet" ] || { echo "error: no GarouError snippet in $OUT/snippets" >&2; exit 1; }
printf '\nexport { GarouError } from "./%s";\n' "$snippet" >> "$OUT/$NAME.js"
# `[Symbol.dispose]()` needs lib esnext.disposable: without it, the .d.ts does not compile
# under `tsc --strict` without skipLibCheck (lib ES2023). The method stays in the JS
# (where the runtime has Symbol.dispose); only its declaration goes.
sed -i '/^ *\[Symbol\.dispose\](): void;$/d' "$OUT/$NAME.d.ts"
if grep -q "Symbol.dispose" "$OUT/$NAME.d.ts"; then
  echo "error: $OUT/$NAME.d.ts still mentions Symbol.dispose" >&2; exit 1
fi
step "wasm-opt -Os"
"$WASM_OPT" -Os --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$OUT/${NAME}_bg.wasm" -o "$OUT/${NAME}_bg.wasm"

# ---------------------------------------------------------------- package metadata
VERSION=$(awk '/^\[workspace.package\]/{p=1;next} /^\[/{p=0} p&&/^version *=/{gsub(/"/,"",$3);print $3;exit}' Cargo.toml)
cat > "$OUT/package.json" <<EOF
{
  "name": "garou-wasm-client",
  "version": "$VERSION",
  "description": "Garou chat client for browsers: the Rust protocol session compiled to WebAssembly, over WebTransport or WebSocket",
  "license": "MIT",
  "type": "module",
  "main": "./$NAME.js",
  "module": "./$NAME.js",
  "types": "./$NAME.d.ts",
  "exports": {
    ".": {
      "types": "./$NAME.d.ts",
      "default": "./$NAME.js"
    },
    "./${NAME}_bg.wasm": "./${NAME}_bg.wasm"
  },
  "files": [
    "$NAME.js",
    "$NAME.d.ts",
    "${NAME}_bg.wasm",
    "${NAME}_bg.wasm.d.ts",
    "README.md",
    "INPUTS.sha256",
    "snippets/"
  ],
  "sideEffects": false
}
EOF
cp wasm-client/README.md "$OUT/README.md"
scripts/wasm-inputs-hash.sh > "$OUT/INPUTS.sha256"

# ---------------------------------------------------------------- report
raw=$(stat -c %s "$WASM")
opt=$(stat -c %s "$OUT/${NAME}_bg.wasm")
gz=$(gzip -9c "$OUT/${NAME}_bg.wasm" | wc -c)
js=$(stat -c %s "$OUT/$NAME.js")
jsgz=$(gzip -9c "$OUT/$NAME.js" | wc -c)
step "done: $OUT"
echo "wasm: cargo $raw B, after wasm-bindgen $bindgen_size B, after wasm-opt -Os $opt B, gzip -9 $gz B"
echo "js glue: $js B, gzip -9 $jsgz B"
echo "inputs: $(cat "$OUT/INPUTS.sha256")"
