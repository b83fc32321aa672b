#!/usr/bin/env bash
# CI smoke test of `garou bench`: start `garou serve` on free loopback ports with a temp
# data dir, run a short fan-out (20 clients, 2 s) and fail unless the JSON summary says
# lost == 0, duplicated == 0 and errors == 0. Speed is not checked (CI machines vary).
# GAROU_BIN=path uses that binary; otherwise the debug binary is built (BENCH_PROFILE=release
# builds and uses the release one). BENCH_TRANSPORT=websocket runs the load over /ws instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

target="${CARGO_TARGET_DIR:-target}"
if [ -n "${GAROU_BIN:-}" ]; then
  garou="$GAROU_BIN"
elif [ "${BENCH_PROFILE:-debug}" = release ]; then
  need_rust
  cargo build --release --locked -p garou-cli
  garou="$target/release/garou"
else
  need_rust
  cargo build --locked -p garou-cli
  garou="$target/debug/garou"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# Free loopback ports: UDP for QUIC, TCP for HTTP (bound, read back, released).
read -r quic_port http_port < <(python3 - <<'PY'
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.bind(("127.0.0.1", 0))
print(u.getsockname()[1], t.getsockname()[1])
PY
)

# One address, publishing flat out: lift the abuse limits (per-IP connections, command rate).
GAROU_LIMITS__CONNECTIONS_PER_IP_PER_SEC=100000 GAROU_LIMITS__CONNECTIONS_PER_IP_BURST=100000 \
GAROU_LIMITS__COMMANDS_PER_SEC=1000000 GAROU_LIMITS__COMMAND_BURST=1000000 \
GAROU_LIMITS__COMMANDS_PER_SEC_PER_USER=1000000 GAROU_LIMITS__COMMAND_BURST_PER_USER=1000000 \
GAROU_LIMITS__COMMANDS_PER_SEC_PER_IP=1000000 GAROU_LIMITS__COMMAND_BURST_PER_IP=1000000 \
GAROU_LIMITS__MAX_CONNECTIONS_PER_IP=0 \
"$garou" serve --quic "127.0.0.1:$quic_port" --http "127.0.0.1:$http_port" --data "$work/data" \
  >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!

# Ready once it prints its page address (bounded: 30 s).
for _ in $(seq 300); do
  grep -q "chat page at" "$work/serve.out" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.err" >&2; echo "bench-smoke: garou serve exited" >&2; exit 1; }
  sleep 0.1
done
grep -q "chat page at" "$work/serve.out" || { cat "$work/serve.err" >&2; echo "bench-smoke: garou serve not ready in 30 s" >&2; exit 1; }

if [ "${BENCH_TRANSPORT:-quic}" = websocket ]; then
  load=(--transport websocket --server "127.0.0.1:$http_port")
else
  load=(--server "127.0.0.1:$quic_port" --insecure)
fi
out="$(timeout 120 "$garou" bench fanout "${load[@]}" \
  --clients 20 --duration 2 --json)" || { echo "$out"; echo "bench-smoke: garou bench failed" >&2; exit 1; }
echo "$out"
json="$(printf '%s\n' "$out" | tail -n 1)"
python3 - "$json" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
bad = {k: s[k] for k in ("lost", "duplicated", "errors") if s[k] != 0}
if s["published"] <= 0:
    bad["published"] = s["published"]
if bad:
    sys.exit(f"bench-smoke: FAILED {bad}")
print(f"bench-smoke: ok ({s['deliveries']} deliveries, {s['deliveries_per_sec']:.0f}/s, p99 {s['p99_ms']} ms)")
PY
