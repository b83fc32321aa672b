#!/usr/bin/env bash
# Garou's 2-node cluster against one node (SQLite, then PostgreSQL), one after the other, for the
# fan-out and the rooms shapes: deliveries/s, p50/p99, server CPU-s per 100k deliveries,
# lost/duplicated. Builds garou (release), checks NATS and PostgreSQL answer, then runs
# bench/cluster.py, which prints a Markdown table and writes bench/results/cluster-latest.{md,json}.
#
#   bash bench/cluster.sh                     # 3 rounds, 10 s of publishing per run
#   QUICK=1 bash bench/cluster.sh             # 1 round, 3 s: checks the harness, not the figures
#   ROUNDS=3 DURATION=10 SUBSCRIBERS=100 PUBLISHERS=2 FANOUT_RATE=100 bash bench/cluster.sh
#   ROOMS=50 MEMBERS=4 ROOMS_RATE=500 SETUPS=sqlite,postgres,cluster SHAPES=fanout,rooms bash bench/cluster.sh
#   NATS_URL=nats://127.0.0.1:4222 PG_SERVER=postgres://postgres@127.0.0.1:5432 BENCH_DB=garou_bench ...
#
# The PostgreSQL database BENCH_DB (garou_bench) is dropped and created again before every run
# that uses it: never point it at a database you keep. Each cluster run has a name of its own
# (GAROU_CLUSTER__NAME=garoubench<pid>r<round>), so it never meets a test's cluster on the
# shared NATS. Needs: cargo, python3, taskset, psql, a NATS server and a PostgreSQL server.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
export PATH="$HOME/.cargo/bin:$PATH"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export PG_SERVER="${PG_SERVER:-postgres://postgres@127.0.0.1:5432}"

say() { printf '== %s\n' "$*" >&2; }

for tool in python3 taskset psql cargo; do
    command -v "$tool" >/dev/null || { echo "cluster.sh: $tool is required" >&2; exit 1; }
done
if [ "$(nproc)" -lt 2 ]; then
    echo "cluster.sh: needs 2 CPUs (servers on one, load on the other)" >&2
    exit 1
fi
psql "$PG_SERVER/postgres" -qtAc 'select 1' >/dev/null \
    || { echo "cluster.sh: PostgreSQL does not answer at $PG_SERVER" >&2; exit 1; }
nats_hostport="${NATS_URL#nats://}"
if ! (exec 3<>"/dev/tcp/${nats_hostport%:*}/${nats_hostport##*:}") 2>/dev/null; then
    echo "cluster.sh: NATS does not answer at $NATS_URL" >&2
    exit 1
fi

if [ -z "${GAROU_BIN:-}" ]; then
    say "building garou (release)"
    (cd "$root" && cargo build --release --locked -p garou-cli >&2)
    export GAROU_BIN="${CARGO_TARGET_DIR:-$root/target}/release/garou"
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

exec python3 "$here/cluster.py"
