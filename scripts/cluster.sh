#!/usr/bin/env bash
# Run a Garou cluster on this machine, without Docker: N `garou serve` nodes (default 2,
# named a, b, ...) on one NATS and one PostgreSQL database, all serving the certificate in
# certs/. Node a starts first and becomes the hub; the others relay to it. Prints each
# node's page URL (with ?gateways= naming the other nodes) and the terminal client's
# command, then waits; Ctrl-C (or SIGTERM) stops every node it started. Idempotent: run it
# again to restart (nodes a previous run left behind are stopped first).
#
#   bash scripts/cluster.sh                 # 2 nodes: HTTP 8080, 8081; QUIC 4433, 4434
#   CLUSTER_NODES=3 bash scripts/cluster.sh
#
# Settings (environment):
#   CLUSTER_NODES      nodes to run, 1-26 (default 2)
#   CLUSTER_NATS       the bus (default nats://127.0.0.1:4222)
#   CLUSTER_PG         the shared store; its database is created if missing
#                      (default postgres://postgres@127.0.0.1:5432/garou_cluster, apart
#                      from the tests' `test` database)
#   CLUSTER_NAME       NATS subject prefix, apart from other clusters on the same NATS
#                      (default garou-local)
#   CLUSTER_HOST       address the nodes bind and advertise (default 127.0.0.1)
#   CLUSTER_HTTP_PORT  node a's HTTP port; node i uses this + i (default 8080)
#   CLUSTER_QUIC_PORT  node a's UDP port for QUIC and WebTransport; + i likewise (default 4433)
#   CLUSTER_DIR        logs, pid files and each node's --data (default data/cluster)
# With the default NATS and PostgreSQL addresses, both are installed and started from
# Debian's packages if they are missing or stopped (scripts/lib.sh need_services).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

nodes=${CLUSTER_NODES:-2}
nats=${CLUSTER_NATS:-nats://127.0.0.1:4222}
pg=${CLUSTER_PG:-postgres://postgres@127.0.0.1:5432/garou_cluster}
name=${CLUSTER_NAME:-garou-local}
host=${CLUSTER_HOST:-127.0.0.1}
http0=${CLUSTER_HTTP_PORT:-8080}
quic0=${CLUSTER_QUIC_PORT:-4433}
dir=${CLUSTER_DIR:-data/cluster}

if ! [[ "$nodes" =~ ^[0-9]+$ ]] || [ "$nodes" -lt 1 ] || [ "$nodes" -gt 26 ]; then
  echo "error: CLUSTER_NODES must be 1-26, got $nodes" >&2
  exit 1
fi
letters=(a b c d e f g h i j k l m n o p q r s t u v w x y z)
mkdir -p "$dir"

# Nodes a previous run left running (its pid files name them): stop them, ours only, all
# at once (one by one, each would hand the hub over to the next).
stop_pidfiles() {
  local f pid old=()
  for f in "$dir"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'garou serve'; then
      echo "stopping node $(basename "$f" .pid) (pid $pid) of an earlier run"
      kill -TERM "$pid" 2>/dev/null || true
      old+=("$pid")
    fi
    rm -f "$f"
  done
  for pid in "${old[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
stop_pidfiles

# NATS and PostgreSQL.
nats_hostport=${nats#nats://}
nats_hostport=${nats_hostport%%,*}
nats_hostport=${nats_hostport##*@}
if [ "$nats" = nats://127.0.0.1:4222 ] && [[ "$pg" == postgres://postgres@127.0.0.1:5432/* ]]; then
  need_services
else
  apt_need postgresql-client
fi
command -v curl >/dev/null || apt_need curl
if ! timeout 2 bash -c "exec 3<>/dev/tcp/${nats_hostport%:*}/${nats_hostport##*:} && head -c 4 <&3" 2>/dev/null | grep -q INFO; then
  echo "error: NATS does not answer at $nats" >&2
  exit 1
fi
db=${pg##*/}
db=${db%%\?*}
admin_url="${pg%/*}/postgres"
if ! psql "$admin_url" -w -tAc 'SELECT 1' >/dev/null; then
  echo "error: PostgreSQL does not answer at ${pg%/*}/postgres (is the password in CLUSTER_PG, or in ~/.pgpass?)" >&2
  exit 1
fi
if [ "$(psql "$admin_url" -w -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
  psql "$admin_url" -w -qc "CREATE DATABASE \"$db\""
  echo "created database $db"
fi

# One release build for every node.
need_rust
nice -n 10 cargo build --release -p garou-cli
garou="${CARGO_TARGET_DIR:-target}/release/garou"

# One certificate for every node (browsers pin it by hash: a page falling back to another
# node must meet the same one). Reused while it has more than a day left.
mkdir -p certs
if [ -s certs/cert.pem ] && [ -s certs/key.pem ] && command -v openssl >/dev/null \
   && openssl x509 -checkend 86400 -noout -in certs/cert.pem >/dev/null; then
  echo "reusing certs/cert.pem: sha256 $(openssl x509 -in certs/cert.pem -outform der | sha256sum | cut -d' ' -f1)"
else
  names=(--name localhost --name 127.0.0.1 --name ::1)
  case "$host" in localhost | 127.0.0.1 | ::1) ;; *) names+=(--name "$host") ;; esac
  "$garou" cert --out certs "${names[@]}"
fi

pids=()
stop_all() {
  local code=${1:-0}
  trap - INT TERM
  echo
  echo "stopping ${#pids[@]} node(s)"
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -f "$dir"/*.pid
  echo "all nodes stopped"
  exit "$code"
}
trap 'stop_all 0' INT TERM

ready() {
  curl -fsS -m 2 "http://$host:$1/ready" >/dev/null 2>&1
}
# A node's role (hub, relay, starting) from its /health.
role() {
  curl -fsS -m 2 "http://$host:$1/health" 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["cluster"]["role"])' 2>/dev/null || true
}

for ((i = 0; i < nodes; i++)); do
  node=${letters[$i]}
  http=$((http0 + i))
  quic=$((quic0 + i))
  mkdir -p "$dir/$node"
  GAROU_CLUSTER__NAME="$name" GAROU_CLUSTER__ADVERTISE_HTTP="$host:$http" \
    "$garou" serve --node "$node" --nats "$nats" --store "$pg" \
      --http "$host:$http" --quic "$host:$quic" --data "$dir/$node" \
      --cert certs/cert.pem --key certs/key.pem >"$dir/$node.log" 2>&1 &
  pids+=($!)
  echo $! >"$dir/$node.pid"
  # Node a first, the hub before the others start (they relay to it). A lease left by a
  # node killed without a goodbye runs out first (lease_ms); a hub outside this script keeps
  # it, and node a relays to that one.
  for _ in $(seq 100); do
    if ready "$http"; then
      [ "$i" -gt 0 ] || [ "$(role "$http")" = hub ] && break
    fi
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "error: node $node exited; its log ($dir/$node.log) ends with:" >&2
      tail -5 "$dir/$node.log" >&2
      stop_all 1
    fi
    sleep 0.2
  done
  ready "$http" || echo "warning: node $node is not ready after 20 s (see $dir/$node.log)" >&2
done

echo
echo "cluster '$name': $nodes node(s) on $nats and $pg (logs: $dir/NODE.log)"
servers=()
for ((i = 0; i < nodes; i++)); do servers+=("$host:$((quic0 + i))"); done
for ((i = 0; i < nodes; i++)); do
  others=()
  for ((j = 0; j < nodes; j++)); do
    [ "$j" = "$i" ] || others+=("http://$host:$((http0 + j))")
  done
  url="http://$host:$((http0 + i))/?room=general"
  [ ${#others[@]} -gt 0 ] && url+="&gateways=$(IFS=,; echo "${others[*]}")"
  echo "node ${letters[$i]} ($(role $((http0 + i)))): $url"
done
echo "terminal: $garou chat --server $(IFS=,; echo "${servers[*]}") --insecure --nick you --room general"
echo "Ctrl-C stops every node."
wait
# Every node ended by itself (or a SIGINT reached them directly).
rm -f "$dir"/*.pid
echo "every node has exited"
