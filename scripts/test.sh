#!/usr/bin/env bash
# Everything CI checks, in order: formatting, clippy (-D warnings), then every test of the
# workspace (unit, property, and integration tests over real QUIC on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_rust
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy
start=$(date +%s)
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked 2>&1 | tee target/test-output.txt
passed=$(grep -Eo '^test result: ok\. [0-9]+ passed' target/test-output.txt | awk '{s+=$4} END {print s+0}')
echo "== all green: $passed tests passed in $(( $(date +%s) - start )) s"
