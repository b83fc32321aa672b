#!/usr/bin/env bash
# Browser end-to-end tests: the chat page (web/) and the wasm client in headless Chromium
# (and the chat page in headless Firefox ESR: firefox.test.mjs) against a real gateway, with
# native `garou chat` clients and the example front-end app.
# Installs what it needs once (apt chromium + chromium-driver + firefox-esr in one apt run,
# npm ci in tests/browser),
# builds the gateway (which embeds web/ and wasm-client/pkg/), then runs `node --test`.
# Extra arguments go to `node --test` (e.g. a test file).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_rust
apt_need chromium chromium-driver firefox-esr
command -v npm >/dev/null 2>&1 || apt_need nodejs npm

# npm ci only when node_modules is missing or package-lock.json changed since the last one.
lock_hash=$(sha256sum tests/browser/package-lock.json | cut -d' ' -f1)
stamp=tests/browser/node_modules/.garou-lock-sha256
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  echo "== npm ci (tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" > "$stamp"
fi

echo "== cargo build -p garou-cli"
cargo build -p garou-cli --locked
[ -f wasm-client/pkg/garou_wasm_client.js ] || {
  echo "error: wasm-client/pkg/ has no garou_wasm_client.js (scripts/build-wasm.sh builds it)" >&2
  exit 1
}

echo "== wasm package types (tsc --strict) and README/.d.ts agreement"
bash scripts/wasm-types-check.sh

echo "== browser tests"
start=$(date +%s)
cd tests/browser
node --test "$@"
echo "== browser tests green in $(( $(date +%s) - start )) s"
