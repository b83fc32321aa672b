#!/usr/bin/env bash
# Build and run the Garou gateway with its embedded defaults (self-signed certificate,
# open dev mode). Extra arguments go to `garou serve`, e.g. `--quic [::]:5000`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_rust
cargo build --release -p garou-gateway --bin garou
echo "garou: QUIC on ${GAROU_QUIC:-[::]:4433}; chat with:"
echo "  ./target/release/garou chat --server 127.0.0.1:4433 --insecure --nick you --room general"
exec ./target/release/garou serve "$@"
