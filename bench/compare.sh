#!/usr/bin/env bash
# Side-by-side benchmark (fan-out and many small rooms): Garou against Socket.IO (plain and TLS),
# moq-relay, NATS and plain ws, on this machine, in one invocation, every peer ROUNDS (3) times
# interleaved. Installs what it needs (idempotent), builds, then runs bench/compare.py, which
# prints Markdown tables of medians (min-max) and writes bench/results/latest.{md,json}.
#
#   bash bench/compare.sh                  # everything, 3 interleaved runs per peer
#   PEERS=garou-quic,socketio bash bench/compare.sh
#   QUICK=1 bash bench/compare.sh          # smoke-sized: 1 run, 3 s, 200 idle conns, 50 rooms
#   ROUNDS=3 DURATION=10 CLIENTS=100 SIZE=64 PACED_RATE=100 IDLE_CONN=1000 bash bench/compare.sh
#   ROOMS=250 MEMBERS=4 ROOMS_RATE=2000 SHAPES=idle,burst,paced,rooms bash bench/compare.sh
#   BENCH_NO_MOQ_BUILD=1 ...               # do not `cargo install moq-relay` (~20 min) if it is missing
#
# Needs: cargo, node + npm, python3, taskset, openssl; apt-get for nats-server (skipped if absent).
# The first run builds moq-relay (cargo install) and the moq load client into
# ${GAROU_BENCH_CACHE:-~/.cache/garou-bench}; later runs reuse them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cache="${GAROU_BENCH_CACHE:-$HOME/.cache/garou-bench}"
mkdir -p "$cache"
export GAROU_BENCH_CACHE="$cache"
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '== %s\n' "$*" >&2; }

for tool in node npm python3 taskset openssl cargo; do
    command -v "$tool" >/dev/null || { echo "compare.sh: $tool is required" >&2; exit 1; }
done
if [ "$(nproc)" -lt 2 ]; then
    echo "compare.sh: needs 2 CPUs (server on one, load on the other)" >&2
    exit 1
fi

# Node peers and load clients, pinned by the committed lock file.
if ! (cd "$here/node" && npm ls --omit=dev >/dev/null 2>&1); then
    say "npm ci (bench/node)"
    (cd "$here/node" && npm ci --no-audit --no-fund >&2)
fi

# NATS, the ceiling: Debian's nats-server.
if ! command -v nats-server >/dev/null && [ ! -x /usr/sbin/nats-server ]; then
    say "installing nats-server (apt)"
    if [ "$(id -u)" = 0 ]; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server; } >&2 \
            || say "nats-server not installed: the nats row is skipped"
    else
        say "not root: install nats-server yourself for the nats row"
    fi
fi

# moq-relay: built once (`cargo install`, no --locked, as its README says), reused after.
if ! command -v moq-relay >/dev/null; then
    if [ -n "${BENCH_NO_MOQ_BUILD:-}" ]; then
        say "moq-relay missing and BENCH_NO_MOQ_BUILD set: the moq-relay row is skipped"
    else
        say "cargo install moq-relay (one time, ~20 min)"
        cargo install moq-relay >&2 || say "moq-relay did not build: the moq-relay row is skipped"
    fi
fi

# The moq load client (bench/moq-load, its own workspace), into the cache; a no-op once built.
if command -v moq-relay >/dev/null; then
    say "building bench/moq-load"
    cargo build --release --locked --manifest-path "$here/moq-load/Cargo.toml" \
        --target-dir "$cache/moq-load-target" >&2 || say "moq-load did not build: the moq-relay row is skipped"
fi
export MOQ_RELAY_BIN="${MOQ_RELAY_BIN:-$(command -v moq-relay || echo /nonexistent)}"

# Garou itself, release.
if [ -z "${GAROU_BIN:-}" ]; then
    say "building garou (release)"
    (cd "$root" && cargo build --release --locked -p garou-cli >&2)
    target="${CARGO_TARGET_DIR:-$root/target}"
    export GAROU_BIN="$target/release/garou"
fi

# Enough file descriptors for IDLE_CONN connections on both ends.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

exec python3 "$here/compare.py"
