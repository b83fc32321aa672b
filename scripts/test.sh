#!/usr/bin/env bash
# Everything CI checks, in order:
#   1. rustfmt and clippy (-D warnings) on the whole workspace;
#   2. every Rust test (unit, property, and integration over real QUIC, WebTransport and
#      WebSocket on loopback, real PostgreSQL and NATS: both are installed and started
#      first, and GAROU_TEST_PG / GAROU_TEST_NATS set, so their tests run instead of skipping);
#   3. the browser package: fails if wasm-client/pkg (committed, embedded in the gateway) no
#      longer matches its sources (hash of the inputs), then rebuilds it and fails unless every
#      file of the rebuilt package is byte for byte the committed one;
#   4. the chat page and the package in headless Chromium against a real gateway;
#   5. a short `garou bench fanout` smoke run (fails on any lost or duplicated message);
#   6. a bounded fuzz run of every cargo-fuzz target (FUZZ_SECS each, default 45 s).
# Installs what it needs, once (apt packages, wasm-bindgen-cli, npm packages).
# It cannot go green while skipping: it fails when fewer tests ran than the floors below, or
# when the fuzz stage ran fewer targets than fuzz/Cargo.toml declares.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_rust
start=$(date +%s)
step() { echo "== $* ($(( $(date +%s) - start )) s)"; }
mkdir -p target

# Floors: a little below the counts of the last green run (609 Rust tests with PostgreSQL and NATS, 23 browser tests).
# Raise them when tests are added; never lower them to make a run pass.
MIN_RUST_TESTS=600
MIN_BROWSER_TESTS=22
# Fail unless at least $3 $2 passed (the count is $1).
at_least() {
  if [ "$1" -lt "$3" ]; then
    echo "error: only $1 $2 passed; at least $3 must run (a stage skipped tests?)" >&2
    exit 1
  fi
  echo "$1 $2 passed (floor $3)"
}

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "PostgreSQL and NATS for the tests"
need_services
echo "GAROU_TEST_PG=$GAROU_TEST_PG GAROU_TEST_NATS=$GAROU_TEST_NATS"
step "cargo test"
cargo test --workspace --locked 2>&1 | tee target/test-output.txt
rust_passed=$(grep -Eo '^test result: ok\. [0-9]+ passed' target/test-output.txt | awk '{s+=$4} END {print s+0}')
at_least "$rust_passed" "Rust tests" "$MIN_RUST_TESTS"

step "wasm package is up to date with its sources"
if ! bash scripts/wasm-inputs-hash.sh --check; then
  echo "error: wasm-client/pkg is stale: run scripts/build-wasm.sh and commit wasm-client/pkg" >&2
  exit 1
fi
step "wasm package rebuilds to the committed bytes"
bash scripts/build-wasm.sh target/wasm-pkg-check
bash scripts/wasm-pkg-compare.sh wasm-client/pkg target/wasm-pkg-check

step "browser tests"
bash scripts/browser-test.sh 2>&1 | tee target/browser-output.txt
browser_passed=$(grep -Eo '^# pass [0-9]+' target/browser-output.txt | awk '{s+=$3} END {print s+0}')
at_least "$browser_passed" "browser tests" "$MIN_BROWSER_TESTS"

step "bench smoke: garou bench fanout"
bash scripts/bench-smoke.sh

step "fuzz (bounded)"
FUZZ_SECS=${FUZZ_SECS:-45} bash scripts/fuzz.sh 2>&1 | tee target/fuzz-output.txt
# `fuzz: ran N of M targets` (M: the [[bin]]s of fuzz/Cargo.toml): every target must have
# run, FUZZ_TARGETS may not trim the list, and no source in fuzz_targets/ may be left out.
read -r fuzz_ran fuzz_total < <(sed -nE 's/^fuzz: ran ([0-9]+) of ([0-9]+) targets$/\1 \2/p' target/fuzz-output.txt | tail -1) || true
fuzz_sources=$(find fuzz/fuzz_targets -name '*.rs' | wc -l)
if [ -z "${fuzz_total:-}" ] || [ "$fuzz_ran" -lt "$fuzz_total" ] || [ "$fuzz_ran" -lt "$fuzz_sources" ]; then
  echo "error: the fuzz stage ran ${fuzz_ran:-no} targets; fuzz/Cargo.toml declares ${fuzz_total:-?} and" >&2
  echo "       fuzz/fuzz_targets/ holds $fuzz_sources: every one must run" >&2
  exit 1
fi

step "all green: $rust_passed Rust tests, $browser_passed browser tests, $fuzz_ran fuzz targets"
