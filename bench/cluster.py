#!/usr/bin/env python3
"""Garou's cluster against one node: the same `garou bench fanout` and `garou bench rooms` runs,
one after the other, on

  sqlite    one `garou serve` on its embedded SQLite store (the default);
  postgres  one `garou serve --store postgres://...` (no cluster): the cluster's store, no bus;
  cluster   two nodes, `--node --nats --store postgres://...`: the first is the hub (it holds the
            PostgreSQL lease, sequences and commits every room), the second a relay carrying its
            connections to the hub over NATS; the bench's clients alternate over both
            (`--server HUB,RELAY`), publishers included.

Run through bench/cluster.sh (release build, NATS and PostgreSQL checks). Stdlib only; the
server/CPU machinery is compare.py's. Every gateway process is pinned to SERVER_CORE with one
worker thread, the load to LOAD_CORE; NATS and PostgreSQL are the machine's shared services and
are not pinned. Server CPU is the sum of utime + stime of every gateway process of the setup
(both nodes for the cluster; NATS's and PostgreSQL's CPU is not counted, in any row), sampled
over the publishing window as in compare.py:
  CPU-s per 100k deliveries = (CPU seconds in window / window seconds) / deliveries_per_sec * 1e5

Noise: ROUNDS (3) rounds, the setups interleaved within each (sqlite, postgres, cluster, sqlite,
...), each run on fresh servers and a fresh store (a new SQLite directory; the PostgreSQL database
BENCH_DB dropped and created again); cells are medians with the min-max spread.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare as C  # noqa: E402

QUICK = os.environ.get("QUICK", "") not in ("", "0")


def knob(name, full, quick, kind=int):
    return kind(os.environ.get(name, quick if QUICK else full))


ROUNDS = max(1, knob("ROUNDS", 3, 1))
DURATION = knob("DURATION", 10, 3, float)
SIZE = knob("SIZE", 64, 64)
SUBSCRIBERS = knob("SUBSCRIBERS", 100, 100)
PUBLISHERS = knob("PUBLISHERS", 2, 2)
FANOUT_RATE = knob("FANOUT_RATE", 100, 100)
ROOMS = knob("ROOMS", 50, 50)
MEMBERS = knob("MEMBERS", 4, 4)
ROOMS_RATE = knob("ROOMS_RATE", 500, 500)
SETUPS = [x for x in os.environ.get("SETUPS", "sqlite,postgres,cluster").split(",") if x]
SHAPES = [x for x in os.environ.get("SHAPES", "fanout,rooms").split(",") if x]
NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
PG_SERVER = os.environ.get("PG_SERVER", "postgres://postgres@127.0.0.1:5432")
BENCH_DB = os.environ.get("BENCH_DB", "garou_bench")
PORT_BASE = int(os.environ.get("PORT_BASE", 27300))
OUT = os.environ.get("OUT", "cluster-latest")  # bench/results/OUT.{md,json}
GAROU = C.GAROU
ONE = {"TOKIO_WORKER_THREADS": "1"}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def psql(sql):
    """Run SQL on the server's `postgres` database (trust auth, as on these machines)."""
    subprocess.run(["psql", f"{PG_SERVER}/postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True,
                   capture_output=True, text=True, timeout=60)


def fresh_db():
    psql(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{BENCH_DB}"')
    return f"{PG_SERVER}/{BENCH_DB}"


def role(http):
    try:
        with urllib.request.urlopen(f"http://{http}/health", timeout=2) as r:
            return json.loads(r.read()).get("cluster", {}).get("role")
    except (OSError, ValueError):
        return None


def wait_role(http, want, limit=30):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if role(http) == want:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the node at {http} did not become {want} within {limit} s")


class Setup:
    """The gateway processes of one setup; `pids` for the CPU sampler, `quic` the bench's --server."""

    def __init__(self, name, tmp, rnd):
        self.name, self.nodes, self.quic = name, [], []
        env = dict(ONE, RUST_LOG="warn", **C.GAROU_BENCH_LIMITS)
        data = lambda i: str(tmp / f"{name}-{rnd}-{i}")  # noqa: E731
        addr = lambda i: (f"127.0.0.1:{PORT_BASE + 2 * i}", f"127.0.0.1:{PORT_BASE + 2 * i + 1}")  # noqa: E731
        try:
            if name == "sqlite":
                self.start(0, [], env, data)
            elif name == "postgres":
                self.start(0, ["--store", fresh_db()], env, data)
            elif name == "cluster":
                store = fresh_db()
                env = dict(env, GAROU_CLUSTER__NAME=f"garoubench{os.getpid()}r{rnd}")
                for i, (node, want) in enumerate((("hub", "hub"), ("relay", "relay"))):
                    args = ["--node", f"bench-{node}", "--nats", NATS_URL, "--store", store]
                    self.start(i, args, env, data)
                    wait_role(addr(i)[1], want)
            else:
                raise RuntimeError(f"unknown setup {name}")
        except BaseException:
            self.stop()
            raise

    def start(self, i, args, env, data):
        q, h = f"127.0.0.1:{PORT_BASE + 2 * i}", f"127.0.0.1:{PORT_BASE + 2 * i + 1}"
        cmd = [GAROU, "serve", "--quic", q, "--http", h, "--data", data(i), *args]
        srv = C.Server(f"{self.name}-{i}", cmd, PORT_BASE + 2 * i, True, env)
        C.LIVE.append(srv.proc)
        self.nodes.append(srv)
        self.quic.append(q)

    @property
    def pids(self):
        return [n.pid for n in self.nodes]

    @property
    def pid(self):
        return self.nodes[0].pid

    def stop(self):
        # Relays first, then the hub (which hands its lease back).
        for n in reversed(self.nodes):
            n.stop()
            C.LIVE.remove(n.proc)
        self.nodes = []


def load(shape, servers):
    common = ["--server", ",".join(servers), "--insecure", "--size", str(SIZE), "--duration", str(DURATION),
              "--json"]
    if shape == "fanout":
        return [GAROU, "bench", "fanout", *common, "--clients", str(SUBSCRIBERS + PUBLISHERS), "--publishers",
                str(PUBLISHERS), "--rate", str(FANOUT_RATE)]
    return [GAROU, "bench", "rooms", *common, "--rooms", str(ROOMS), "--members", str(MEMBERS), "--rate",
            str(ROOMS_RATE)]


def bench_setup(name, tmp, rnd):
    log(f"== {name} (round {rnd + 1}/{ROUNDS}): starting")
    try:
        setup = Setup(name, tmp, rnd)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return {"skipped": str(e)}
    res = {"servers": setup.quic}
    try:
        for shape in SHAPES:
            r = C.run_load(setup, load(shape, setup.quic), ONE)
            log(f"   {name} {shape}: {json.dumps(r)}")
            res[shape] = r
    finally:
        setup.stop()
    return res


PATHS = [("0->0", "hub→hub"), ("0->1", "hub→relay"), ("1->0", "relay→hub"), ("1->1", "relay→relay")]


def cell(runs, get, digits=2):
    return C.cell(runs, get, digits)


def table(results):
    head = ["setup", "shape", "deliveries/s", "p50 ms", "p99 ms", "server CPU-s/100k", "lost", "duplicated",
            "errors"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    paths = []
    for shape in SHAPES:
        for name in SETUPS:
            runs = [r for r in results[name] if shape in r and "error" not in r[shape]]
            if not runs:
                rows.append(f"| {name} | {shape} | " + " | ".join(["-"] * (len(head) - 2)) + " |")
                continue
            f = C.field
            total = lambda k: sum(r[shape].get(k, 0) for r in runs)  # noqa: E731
            rows.append("| " + " | ".join([
                name, shape, cell(runs, f(shape, "deliveries_per_sec"), 0), cell(runs, f(shape, "p50_ms")),
                cell(runs, f(shape, "p99_ms")), cell(runs, f(shape, "cpu_s_per_100k")), str(total("lost")),
                str(total("duplicated")), str(total("errors"))]) + " |")
            if name == "cluster":
                p = [f"{shape}"]
                for key, label in PATHS:
                    g50 = lambda r, k=key: r[shape].get("latency_by_path", {}).get(k, {}).get("p50_ms")  # noqa: E731
                    g99 = lambda r, k=key: r[shape].get("latency_by_path", {}).get(k, {}).get("p99_ms")  # noqa: E731
                    p.append(f"{cell(runs, g50)} / {cell(runs, g99)}")
                paths.append("| " + " | ".join(p) + " |")
    out = "\n".join(rows)
    if paths:
        out += ("\n\nCluster latency by path (publisher's node → subscriber's node), p50 / p99 ms:\n\n"
                "| shape | " + " | ".join(label for _, label in PATHS) + " |\n|" + "---|" * (len(PATHS) + 1)
                + "\n" + "\n".join(paths))
    return out


def deltas(results):
    """Cluster p50 minus each single-node p50, from the medians."""
    out = []
    for shape in SHAPES:
        get = C.field(shape, "p50_ms")
        med = {}
        for name in SETUPS:
            vs = C.values([r for r in results[name] if shape in r and "error" not in r[shape]], get)
            if vs:
                med[name] = C.median(vs)
        if "cluster" in med:
            parts = [f"{med['cluster'] - med[b]:+.2f} ms vs {b}" for b in ("sqlite", "postgres") if b in med]
            out.append(f"- {shape}: cluster p50 {med['cluster']:.2f} ms, " + ", ".join(parts))
    return out


def notes(results):
    out = []
    for name, runs in results.items():
        for i, r in enumerate(runs):
            if "skipped" in r:
                out.append(f"- {name} round {i + 1}: not run ({r['skipped']})")
            for shape in SHAPES:
                if "error" in r.get(shape, {}):
                    out.append(f"- {name} round {i + 1} {shape}: {r[shape]['error']}")
    return out


def main():
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *a: (C.cleanup(), sys.exit(130)))
    mach = C.machine()
    log(f"machine: {mach}")
    results = {name: [] for name in SETUPS}
    with tempfile.TemporaryDirectory(prefix="garou-cluster-bench-") as d:
        tmp = Path(d)
        try:
            for rnd in range(ROUNDS):
                for name in SETUPS:
                    results[name].append(bench_setup(name, tmp, rnd))
        finally:
            C.cleanup()
    loadavg_end = subprocess.run("cut -d' ' -f1-3 /proc/loadavg", shell=True, capture_output=True,
                                 text=True).stdout.strip()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    runs = f"median of {ROUNDS} rounds (min–max)" if ROUNDS > 1 else "1 run"
    md = [
        f"Run {stamp} on {mach['cpu']} ({mach['cpus']} CPUs), {mach['uname']}; load average at start "
        f"{mach['loadavg_at_start']}, at the end {loadavg_end}. Every cell is the {runs}; lost, duplicated "
        f"and errors are summed over the rounds.",
        "",
        f"**fanout**: 1 room, {PUBLISHERS} publishers + {SUBSCRIBERS} subscribers ({SUBSCRIBERS + PUBLISHERS} "
        f"clients, each receiving every message, the publishers theirs included), {FANOUT_RATE} msg/s in total. "
        f"**rooms**: {ROOMS} rooms × {MEMBERS} members, every member publishing, {ROOMS_RATE} msg/s in total. "
        f"{SIZE}-byte messages, {DURATION:g} s of publishing, QUIC. Gateways on CPU {C.SERVER_CORE} with one "
        f"worker thread each (the cluster's two nodes included), the load on CPU {C.LOAD_CORE}; in the cluster, "
        f"client i is on node i mod 2 (node 0 the hub, node 1 the relay).",
        "",
        table(results),
        "",
        *deltas(results),
        *notes(results),
    ]
    text = "\n".join(md) + "\n"
    print(text)
    out = C.BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / f"{OUT}.md").write_text(text)
    (out / f"{OUT}.json").write_text(json.dumps(
        {"when": stamp, "machine": dict(mach, loadavg_at_end=loadavg_end),
         "shape": {"rounds": ROUNDS, "duration_s": DURATION, "size": SIZE, "subscribers": SUBSCRIBERS,
                   "publishers": PUBLISHERS, "fanout_rate": FANOUT_RATE, "rooms": ROOMS, "members": MEMBERS,
                   "rooms_rate": ROOMS_RATE, "setups": SETUPS, "shapes": SHAPES, "quick": QUICK},
         "results": results}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
