#!/usr/bin/env bash
# Build and run the Garou gateway with its embedded defaults (self-signed certificate,
# open dev mode): raw QUIC + WebTransport on UDP [::]:4433, the chat page, /cert-hash and
# the WebSocket fallback on http://localhost:8080/. The page and its wasm package are
# committed and embedded in the binary: no wasm toolchain is needed here.
# Extra arguments go to `garou serve`, e.g. `--http [::]:9000`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_rust
cargo build --release -p garou-cli
garou="${CARGO_TARGET_DIR:-target}/release/garou"
echo "garou: terminal chat: $garou chat --server 127.0.0.1:4433 --insecure --nick you --room general"
exec "$garou" serve "$@"
