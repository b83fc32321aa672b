#!/usr/bin/env bash
# Everything CI checks, in order:
#   1. rustfmt and clippy (-D warnings) on the whole workspace;
#   2. every Rust test (unit, property, and integration over real QUIC, WebTransport and
#      WebSocket on loopback);
#   3. the browser package: fails if wasm-client/pkg (committed, embedded in the gateway) no
#      longer matches its sources, and rebuilds it from scratch to prove the build works;
#   4. the chat page and the package in headless Chromium against a real gateway;
#   5. a short `garou bench fanout` smoke run (fails on any lost or duplicated message);
#   6. a bounded fuzz run of every cargo-fuzz target (FUZZ_SECS each, default 45 s).
# Installs what it needs, once (apt packages, wasm-bindgen-cli, npm packages).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_rust
start=$(date +%s)
step() { echo "== $* ($(( $(date +%s) - start )) s)"; }
mkdir -p target

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test"
cargo test --workspace --locked 2>&1 | tee target/test-output.txt
rust_passed=$(grep -Eo '^test result: ok\. [0-9]+ passed' target/test-output.txt | awk '{s+=$4} END {print s+0}')

step "wasm package is up to date with its sources"
if ! bash scripts/wasm-inputs-hash.sh --check; then
  echo "error: wasm-client/pkg is stale: run scripts/build-wasm.sh and commit wasm-client/pkg" >&2
  exit 1
fi
step "wasm package rebuilds"
bash scripts/build-wasm.sh target/wasm-pkg-check

step "browser tests"
bash scripts/browser-test.sh 2>&1 | tee target/browser-output.txt
browser_passed=$(grep -Eo '^# pass [0-9]+' target/browser-output.txt | awk '{s+=$3} END {print s+0}')

step "bench smoke: garou bench fanout"
bash scripts/bench-smoke.sh

step "fuzz (bounded)"
FUZZ_SECS=${FUZZ_SECS:-45} bash scripts/fuzz.sh 2>&1 | tee target/fuzz-output.txt

step "all green: $rust_passed Rust tests and $browser_passed browser tests passed"
