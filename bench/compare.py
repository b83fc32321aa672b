#!/usr/bin/env python3
"""Side-by-side fan-out benchmark: Garou against the servers a user would pick instead.

Run through bench/compare.sh, which installs and builds what this needs. Stdlib only.

Every peer gets the same shapes: IDLE_CONN idle subscribed connections for RSS; the fan-out shape
(one publisher, CLIENTS subscribers in one room, SIZE-byte messages) as a burst run (flat out,
bounded in-flight window) and a paced run (PACED_RATE messages/s, i.e. PACED_RATE * CLIENTS
deliveries/s); and, for the peers that have rooms, the rooms shape (ROOMS rooms of MEMBERS members,
every member publishing, ROOMS_RATE messages/s in total). The server is pinned to SERVER_CORE with
one worker thread, the load to LOAD_CORE; only the server's CPU is measured, from /proc/PID/stat
(utime + stime of all its threads).

Noise: every peer runs ROUNDS times (3), interleaved (A B C, A B C, A B C: a slow minute of the
machine hits every peer, not one), each run on a fresh server (and a fresh store for Garou); the
tables give the median of the runs with the min-max spread. QUICK=1 is a smoke-sized run (1 round,
3 s, 200 idle connections, 50 rooms at 400 msg/s) that checks the harness, not the figures.

CPU per delivery is taken from the publishing window, not the whole run, so connection setup (TLS
handshakes) and teardown do not count: the server's CPU is sampled every 100 ms while the load runs.
A load client that reports its window (window_start_unix_ms / window_end_unix_ms in its JSON, as the
Node and moq clients here do) is measured over exactly that span less its first 0.3 s; one that does
not is measured over the STEADY_S seconds ending 1 s before it exits.
  CPU-s per 100k deliveries = (CPU seconds in window / window seconds) / deliveries_per_sec * 1e5
"""

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NODE = BENCH / "node"

QUICK = os.environ.get("QUICK", "") not in ("", "0")


def knob(name, full, quick, kind=int):
    """An environment knob: its value if set, else the full run's default (QUICK=1: the quick one)."""
    return kind(os.environ.get(name, quick if QUICK else full))


CLIENTS = knob("CLIENTS", 100, 100)
SIZE = knob("SIZE", 64, 64)
DURATION = knob("DURATION", 10, 3, float)
PACED_RATE = knob("PACED_RATE", 100, 100)
IDLE_CONN = knob("IDLE_CONN", 1000, 200)
ROUNDS = max(1, knob("ROUNDS", 3, 1))
ROOMS = knob("ROOMS", 250, 50)
MEMBERS = knob("MEMBERS", 4, 4)
ROOMS_RATE = knob("ROOMS_RATE", 2000, 400)
SHAPES = [x for x in os.environ.get("SHAPES", "idle,burst,paced,rooms").split(",") if x]
SERVER_CORE = os.environ.get("SERVER_CORE", "0")
LOAD_CORE = os.environ.get("LOAD_CORE", "1")
STEADY_S = float(os.environ.get("STEADY_S", max(1.0, DURATION - 3)))
RUN_LIMIT = 60  # seconds, every load run
TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

GAROU = os.environ.get("GAROU_BIN", str(ROOT / "target" / "release" / "garou"))
MOQ_RELAY = os.environ.get("MOQ_RELAY_BIN", shutil.which("moq-relay") or str(Path.home() / ".cargo/bin/moq-relay"))
MOQ_LOAD = os.environ.get(
    "MOQ_LOAD_BIN",
    str(Path(os.environ.get("GAROU_BENCH_CACHE", Path.home() / ".cache/garou-bench")) / "moq-load-target/release/moq-load"),
)
NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"

# A/B variants of the Garou server: GAROU_VARIANTS="old=/tmp/garou-old;ack1=:GAROU_X=1,GAROU_Y=2"
# adds the peers garou-quic[old] and garou-quic[ack1] (name=server binary, empty for GAROU_BIN, then
# optionally ':' and environment settings). Only the server differs: every load client is GAROU_BIN's.
# Put them in PEERS, e.g. PEERS=garou-quic,garou-quic[old] SHAPES=paced,rooms.
VARIANTS = {}
for _v in filter(None, os.environ.get("GAROU_VARIANTS", "").split(";")):
    _name, _, _rest = _v.partition("=")
    _bin, _, _env = _rest.partition(":")
    VARIANTS[f"garou-quic[{_name}]"] = (_bin or None, dict(kv.split("=", 1) for kv in filter(None, _env.split(","))))

ALL_PEERS = ["garou-quic", "garou-quic-sync-normal", "garou-websocket", "socketio", "socketio-tls", "moq-relay",
             "nats", "ws"]
# Below Linux's ephemeral range (32768-60999 by default): the load clients open thousands of
# connections, and one of their source ports can take a server port a later peer binds.
PORT_BASE = int(os.environ.get("PORT_BASE", 27100))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def cpu_ticks(pid):
    """utime + stime of the whole process (all threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def port_bound(port, udp):
    """Whether something on this machine listens on the port (TCP LISTEN or a bound UDP socket)."""
    files = ["/proc/net/udp", "/proc/net/udp6"] if udp else ["/proc/net/tcp", "/proc/net/tcp6"]
    want = f":{port:04X}"
    for name in files:
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(want) and (udp or parts[3] == "0A"):
                        return True
        except FileNotFoundError:
            pass
    return False


class Sampler(threading.Thread):
    """Samples the server's CPU ticks every 100 ms until stopped; given several pids (the nodes
    of a cluster), their sum."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pids = list(pid) if isinstance(pid, (list, tuple)) else [pid]
        self.samples, self.done = [], threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                self.samples.append((time.time(), sum(cpu_ticks(p) for p in self.pids)))
            except OSError:
                return
            self.done.wait(0.1)

    def rate(self, start, end):
        """CPU seconds per wall second over [start, end], from the samples nearest inside it."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return None
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return (c1 - c0) / TICK / (t1 - t0) if t1 > t0 else None


class Server:
    def __init__(self, name, cmd, port, udp, env=None, cwd=None):
        self.name, self.port, self.udp = name, port, udp
        full_env = dict(os.environ, **(env or {}))
        self.logf = open(Path(tempfile.gettempdir()) / f"garou-bench-{name}.log", "w")
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *cmd],
            env=full_env,
            cwd=cwd,
            stdout=self.logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while not port_bound(port, udp):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode}, see {self.logf.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not bind port {port} within 20 s, see {self.logf.name}")
            time.sleep(0.05)
        time.sleep(0.5)  # let it finish starting (threads, first allocations) before the baseline

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.logf.close()


LIVE = []


def cleanup(*_):
    for p in LIVE:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def load_cmd(cmd, env=None):
    return ["taskset", "-c", LOAD_CORE, *cmd], dict(os.environ, RUST_BACKTRACE="0", **(env or {}))


def first_lines(text, n=3):
    """The start of an error report, on one line (the cause comes first; backtraces come last)."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return " / ".join(lines[:n])[:300]


def run_load(server, cmd, env=None):
    """One bounded load run with the server's CPU sampled (`server.pids`, if it has them, are
    summed: the nodes of a cluster); returns the client's JSON plus CPU."""
    argv, full_env = load_cmd(cmd, env)
    sampler = Sampler(getattr(server, "pids", None) or server.pid)
    sampler.start()
    t_start = time.time()
    steal_start = steal_ms()
    p = subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    LIVE.append(p)
    try:
        out, err = p.communicate(timeout=RUN_LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        sampler.done.set()
        return {"error": f"load run exceeded {RUN_LIMIT} s"}
    finally:
        LIVE.remove(p)
    t_end = time.time()
    steal_end = steal_ms()
    time.sleep(0.15)
    sampler.done.set()
    sampler.join()
    lines = [line for line in out.strip().splitlines() if line.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"error": f"load exit {p.returncode}: {first_lines(err or out)}"}
    res = json.loads(lines[-1])
    if res.get("window_start_unix_ms") and res.get("window_end_unix_ms"):
        # The client said when it published: measure exactly that span (minus its first 0.3 s).
        win_start = res["window_start_unix_ms"] / 1000 + 0.3
        win_end = res["window_end_unix_ms"] / 1000
        res["cpu_window"] = "reported"
    else:
        win_end = t_end - 1.0
        win_start = max(t_start, win_end - STEADY_S)
        res["cpu_window"] = "end-anchored"
    rate = sampler.rate(win_start, win_end)
    whole = sampler.rate(t_start, t_end)
    res["server_cpu_per_s"] = rate
    dps = res.get("deliveries_per_sec") or 0
    res["cpu_s_per_100k"] = rate / dps * 1e5 if rate is not None and dps > 0 else None
    res["server_cpu_s_whole_run"] = whole * (t_end - t_start) if whole is not None else None
    res["wall_s"] = t_end - t_start
    # CPU time the hypervisor gave to someone else during the run, per CPU: the paced p99
    # tail follows it (bench/README.md, issue 16).
    res["steal_ms"] = [b - a for a, b in zip(steal_start, steal_end)]
    return res


def steal_ms():
    """Steal time of each CPU so far (ms), from /proc/stat ([] where unavailable)."""
    try:
        with open("/proc/stat") as f:
            rows = [line.split() for line in f if line.startswith("cpu") and not line.startswith("cpu ")]
        return [int(r[8]) * 1000 // TICK for r in rows]
    except (OSError, IndexError, ValueError):
        return []


def run_idle(server, cmd, env=None):
    """RSS per idle connection: VmRSS before, and after N connections have subscribed (READY)."""
    before = rss_kb(server.pid)
    argv, full_env = load_cmd(cmd, env)
    p = subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    LIVE.append(p)
    ready, result = None, {}
    holder = {}

    def reader():
        for line in p.stdout:
            if line.startswith("READY"):
                holder["ready"] = int(line.split()[1])
                holder["event"].set()

    holder["event"] = threading.Event()
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    if holder["event"].wait(45):
        ready = holder["ready"]
        time.sleep(2)  # let the server settle (buffers, lazily touched pages)
        after = rss_kb(server.pid)
        result = {"rss_before_kb": before, "rss_after_kb": after, "connections": ready,
                  "rss_per_conn_kb": (after - before) / ready if ready else None}
    else:
        result = {"error": "idle connections not ready within 45 s"}
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()
    LIVE.remove(p)
    return result


def run_json(cmd, env=None, limit=RUN_LIMIT):
    """A load command that reports by itself (garou bench connections): its last JSON line."""
    argv, full_env = load_cmd(cmd, env)
    try:
        cp = subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"error": f"exceeded {limit} s"}
    lines = [line for line in cp.stdout.strip().splitlines() if line.startswith("{")]
    if cp.returncode != 0 or not lines:
        return {"error": f"exit {cp.returncode}: {first_lines(cp.stderr or cp.stdout)}"}
    return json.loads(lines[-1])


def garou_has_fanout():
    try:
        cp = subprocess.run([GAROU, "bench", "fanout", "--help"], capture_output=True, timeout=20)
        return cp.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def make_cert(tmp):
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


def node_load(peer, url, rooms=False):
    base = ["node", str(NODE / "load.mjs")]
    spec = {
        "fanout": lambda rate: base + ["fanout", "--peer", peer, "--url", url, "--clients", str(CLIENTS),
                                       "--rate", str(rate), "--size", str(SIZE), "--duration", str(DURATION)],
        "idle": base + ["idle", "--peer", peer, "--url", url, "--connections", str(IDLE_CONN), "--hold", "50"],
    }
    if rooms:
        spec["rooms"] = base + ["rooms", "--peer", peer, "--url", url, "--rooms", str(ROOMS), "--members",
                                str(MEMBERS), "--rate", str(ROOMS_RATE), "--size", str(SIZE), "--duration",
                                str(DURATION)]
    return spec


GAROU_BENCH_LIMITS = {
    "GAROU_LIMITS__CONNECTIONS_PER_IP_PER_SEC": "100000",
    "GAROU_LIMITS__CONNECTIONS_PER_IP_BURST": "100000",
    "GAROU_LIMITS__COMMANDS_PER_SEC": "1000000",
    "GAROU_LIMITS__COMMAND_BURST": "1000000",
    "GAROU_LIMITS__COMMANDS_PER_SEC_PER_USER": "1000000",
    "GAROU_LIMITS__COMMAND_BURST_PER_USER": "1000000",
    "GAROU_LIMITS__COMMANDS_PER_SEC_PER_IP": "1000000",
    "GAROU_LIMITS__COMMAND_BURST_PER_IP": "1000000",
    "GAROU_LIMITS__MAX_CONNECTIONS_PER_IP": "0",
}


def peer_spec(name, tmp, rnd=0):
    """(server command, port, udp?, env, load commands) for a peer, or a reason it cannot run."""
    one = {"TOKIO_WORKER_THREADS": "1"}
    if name.startswith("garou"):
        if not os.access(GAROU, os.X_OK):
            return f"no garou binary at {GAROU}"
        q, h = PORT_BASE, PORT_BASE + 1
        data = tmp / f"{name}-data-{rnd}"  # a fresh store per run
        server_bin, server_env = VARIANTS.get(name, (None, {}))
        srv = [server_bin or GAROU, "serve", "--quic", f"127.0.0.1:{q}", "--http", f"127.0.0.1:{h}", "--data",
               str(data)]
        transport = "websocket" if name == "garou-websocket" else "quic"
        target = f"127.0.0.1:{h}" if transport == "websocket" else f"127.0.0.1:{q}"
        # garou bench counts the publisher as a room member (it gets its own message back, as in a
        # chat), so CLIENTS subscribers plus the publisher is CLIENTS + 1 clients.
        fan = lambda rate: [GAROU, "bench", "fanout", "--server", target, "--insecure", "--clients",  # noqa: E731
                            str(CLIENTS + 1), "--publishers", "1", "--rate", str(rate), "--size", str(SIZE),
                            "--duration", str(DURATION), "--transport", transport, "--json"]
        idle = [GAROU, "bench", "connections", "--server", target, "--insecure", "--connections",
                str(IDLE_CONN), "--server-pid", "{PID}", "--hold", "5", "--json"]
        rooms = [GAROU, "bench", "rooms", "--server", target, "--insecure", "--rooms", str(ROOMS), "--members",
                 str(MEMBERS), "--rate", str(ROOMS_RATE), "--size", str(SIZE), "--duration", str(DURATION),
                 "--transport", transport, "--json"]
        if transport == "websocket":
            idle[-1:-1] = ["--transport", "websocket"]
        # The load comes from one address and publishes flat out: lift the per-IP connection
        # rate and the per-client command rate (abuse limits; the peers have none).
        env = dict(one, RUST_LOG="warn", **GAROU_BENCH_LIMITS, **server_env)
        spec = {"server": srv, "port": q, "udp": True, "env": env, "fanout": fan, "idle_self": idle,
                "rooms": rooms, "load_env": one}
        if name == "garou-quic-sync-normal":
            # The same server with SQLite's synchronous = NORMAL: the WAL is not fsynced at every
            # group commit (a power loss may drop the last commits; a crash of the process does
            # not). The difference to garou-quic is what the fsync costs. Idle RSS does not depend
            # on it, so that shape is not run twice.
            env["GAROU_SQLITE_SYNCHRONOUS"] = "normal"
            spec["skip"] = {"idle"}
        return spec
    if name in ("socketio", "socketio-tls", "ws"):
        port = PORT_BASE + {"socketio": 10, "socketio-tls": 11, "ws": 12}[name]
        kind = "ws" if name == "ws" else "socketio"
        srv = ["node", str(NODE / "servers.mjs"), kind, str(port)]
        scheme = "http"
        if name == "socketio-tls":
            cert, key = make_cert(tmp)
            srv += [str(cert), str(key)]
            scheme = "https"
        if kind == "ws":
            scheme = "ws"
        url = f"{scheme}://127.0.0.1:{port}"
        return {"server": srv, "port": port, "udp": False, "env": {}, **node_load(kind, url, rooms=kind != "ws")}
    if name == "nats":
        if not os.access(NATS, os.X_OK):
            return "nats-server not installed"
        port = PORT_BASE + 22
        srv = [NATS, "-a", "127.0.0.1", "-p", str(port)]
        return {"server": srv, "port": port, "udp": False, "env": {"GOMAXPROCS": "1"},
                **node_load("nats", f"nats://127.0.0.1:{port}", rooms=True)}
    if name == "moq-relay":
        if not os.access(MOQ_RELAY, os.X_OK):
            return f"no moq-relay at {MOQ_RELAY}"
        if not os.access(MOQ_LOAD, os.X_OK):
            return f"no moq-load at {MOQ_LOAD}"
        port = PORT_BASE + 43
        srv = [MOQ_RELAY, "--listen", f"127.0.0.1:{port}", "--listen-tls-generate", "localhost",
               "--auth-public", "**"]
        url = f"https://127.0.0.1:{port}/"
        return {"server": srv, "port": port, "udp": True, "env": dict(one, RUST_LOG="warn"),
                "fanout": lambda rate: [MOQ_LOAD, "fanout", "--url", url, "--clients", str(CLIENTS), "--rate",
                                        str(rate), "--size", str(SIZE), "--duration", str(DURATION)],
                "idle": [MOQ_LOAD, "idle", "--url", url, "--connections", str(IDLE_CONN), "--hold", "50"]}
    return f"unknown peer {name}"


def bench_peer(name, tmp, rnd):
    """One run of every shape against a fresh server of `name`: {shape: result} or {"skipped": why}."""
    spec = peer_spec(name, tmp, rnd)
    if isinstance(spec, str):
        return {"skipped": spec, "missing": True}
    if name.startswith("garou") and not garou_has_fanout():
        return {"skipped": f"{GAROU} has no `bench fanout` subcommand yet", "missing": True}
    log(f"== {name} (run {rnd + 1}/{ROUNDS}): starting server")
    try:
        srv = Server(name, spec["server"], spec["port"], spec["udp"], spec["env"])
    except (RuntimeError, OSError) as e:
        return {"skipped": str(e)}
    LIVE.append(srv.proc)
    res = {"server_cmd": " ".join(spec["server"]), "server_env": spec["env"]}
    load_env = spec.get("load_env")
    shapes = [x for x in SHAPES if x not in spec.get("skip", ())]
    try:
        if "idle" in shapes:
            log(f"== {name}: idle connections x{IDLE_CONN}")
            if "idle_self" in spec:
                cmd = [a.replace("{PID}", str(srv.pid)) for a in spec["idle_self"]]
                r = run_json(cmd, load_env)
                if "rss_per_session_kb" in r:
                    r["rss_per_conn_kb"] = r["rss_per_session_kb"]
                res["idle"] = r
            else:
                res["idle"] = run_idle(srv, spec["idle"], load_env)
        for mode, rate in (("burst", 0), ("paced", PACED_RATE)):
            if mode in shapes:
                log(f"== {name}: {mode}")
                res[mode] = run_load(srv, spec["fanout"](rate), load_env)
                log(f"   {json.dumps(res[mode])}")
        if "rooms" in shapes and "rooms" in spec:
            log(f"== {name}: rooms {ROOMS} x {MEMBERS} at {ROOMS_RATE} msg/s")
            res["rooms"] = run_load(srv, spec["rooms"], load_env)
            log(f"   {json.dumps(res['rooms'])}")
        res["rss_end_kb"] = rss_kb(srv.pid)
    finally:
        srv.stop()
        LIVE.remove(srv.proc)
    return res


def fmt(v, digits=2):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def pct_of(v):
    return v * 100 if v is not None else None


def field(mode, key, scale=None):
    """One figure of one run: run[mode][key] (None if the run or the shape failed)."""
    def get(run):
        v = run.get(mode, {}).get(key)
        return scale(v) if scale and v is not None else v
    return get


# (column, figure of one run, digits). Every cell is the median over the runs, (min-max) after it.
FANOUT_COLS = [
    ("burst deliveries/s", field("burst", "deliveries_per_sec"), 0),
    ("CPU-s/100k burst", field("burst", "cpu_s_per_100k"), 2),
    ("CPU-s/100k paced", field("paced", "cpu_s_per_100k"), 2),
    ("paced p50 ms", field("paced", "p50_ms"), 1),
    ("paced p99 ms", field("paced", "p99_ms"), 1),
    ("RSS/idle conn KiB", field("idle", "rss_per_conn_kb"), 1),
    # Under 100 % the load client, not the server, set the burst pace: read deliveries/s with that in mind.
    ("server core busy in burst %", field("burst", "server_cpu_per_s", pct_of), 0),
]
ROOMS_COLS = [
    ("published msg/s", field("rooms", "published_per_sec"), 0),
    ("deliveries/s", field("rooms", "deliveries_per_sec"), 0),
    ("CPU-s/100k", field("rooms", "cpu_s_per_100k"), 2),
    ("p50 ms", field("rooms", "p50_ms"), 1),
    ("p99 ms", field("rooms", "p99_ms"), 1),
    ("server core busy %", field("rooms", "server_cpu_per_s", pct_of), 0),
]
NO_RATIO = ("server core busy",)


def values(runs, f):
    return [v for v in (f(r) for r in runs) if v is not None]


def cell(runs, f, digits):
    vs = values(runs, f)
    if not vs:
        return "-"
    if len(vs) == 1:
        return fmt(vs[0], digits)
    return f"{fmt(median(vs), digits)} ({fmt(min(vs), digits)}–{fmt(max(vs), digits)})"


def lost_cell(runs, modes):
    """lost/dup per mode, summed over the runs ("err" if any run of that mode failed)."""
    parts = []
    for mode in modes:
        ms = [r.get(mode) for r in runs if mode in r]
        if not ms:
            continue
        if any("error" in m for m in ms):
            parts.append("err")
        else:
            parts.append(f"{sum(m.get('lost', 0) for m in ms)}/{sum(m.get('duplicated', 0) for m in ms)}")
    return " ; ".join(parts) or "-"


def ran(results):
    """Peers with at least one run that was not skipped: {name: [runs]}."""
    out = {}
    for name, r in results.items():
        runs = [x for x in r["runs"] if "skipped" not in x]
        if runs:
            out[name] = runs
    return out


def table(results, cols, modes, lost_head):
    head = ["peer"] + [c[0] for c in cols] + [lost_head]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    done = ran(results)
    shown = {}
    for name, r in results.items():
        runs = done.get(name)
        if runs is None:
            rows.append(f"| {name} | " + " | ".join(["-"] * (len(head) - 1)) + " |")
            continue
        if not any(m in x for x in runs for m in modes):
            continue  # this peer has no such shape
        shown[name] = runs
        cells = [cell(runs, f, d) for _, f, d in cols]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {lost_cell(runs, modes)} |")
    # Ratios of the medians: each Garou transport against every other peer, and the fsync's cost.
    pairs = [(g, p) for g in ("garou-quic", "garou-websocket") for p in shown
             if g in shown and not p.startswith("garou")]
    if "garou-quic" in shown and "garou-quic-sync-normal" in shown:
        pairs.append(("garou-quic", "garou-quic-sync-normal"))
    for g, p in pairs:
        cells = []
        for col, f, _ in cols:
            a, b = values(shown[g], f), values(shown[p], f)
            if col.startswith(NO_RATIO) or not a or not b or median(b) == 0:
                cells.append("" if col.startswith(NO_RATIO) else "-")
                continue
            cells.append(f"{median(a) / median(b):.2f}x")
        rows.append(f"| {g} / {p} | " + " | ".join(cells) + " | |")
    return "\n".join(rows)


def notes(results):
    out = []
    for name, r in results.items():
        if r["runs"] and r["runs"][0].get("missing"):
            out.append(f"- {name}: not run ({r['runs'][0]['skipped']})")
            continue
        for i, run in enumerate(r["runs"]):
            if "skipped" in run:
                out.append(f"- {name} run {i + 1}: not run ({run['skipped']})")
                continue
            for mode in ("idle", "burst", "paced", "rooms"):
                if "error" in run.get(mode, {}):
                    out.append(f"- {name} run {i + 1} {mode}: {run[mode]['error']}")
    return out


def machine():
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
        except subprocess.TimeoutExpired:
            return ""
    model = sh("lscpu | sed -n 's/^Model name: *//p'")
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "uname": sh("uname -srmo"),
        "mem": sh("free -h | awk '/^Mem:/ {print $2}'"),
        "node": sh("node --version"),
        "nats_server": sh(f"{NATS} --version"),
        "moq_relay": sh(f"{MOQ_RELAY} --version"),
        "garou": sh(f"{GAROU} --version"),
        "loadavg_at_start": sh("cut -d' ' -f1-3 /proc/loadavg"),
    }


def main():
    peers = [p for p in os.environ.get("PEERS", ",".join(ALL_PEERS)).split(",") if p]
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *a: (cleanup(), sys.exit(130)))
    mach = machine()
    log(f"machine: {mach}")
    results = {name: {"runs": []} for name in peers}
    with tempfile.TemporaryDirectory(prefix="garou-bench-") as d:
        tmp = Path(d)
        try:
            # Interleaved: every peer once per round, so the machine's slow minutes spread over all.
            for rnd in range(ROUNDS):
                for name in peers:
                    prev = results[name]["runs"]
                    if prev and prev[0].get("missing"):
                        prev.append(prev[0])  # not installed: no use trying again
                        continue
                    prev.append(bench_peer(name, tmp, rnd))
        finally:
            cleanup()
    loadavg_end = subprocess.run("cut -d' ' -f1-3 /proc/loadavg", shell=True, capture_output=True,
                                 text=True).stdout.strip()
    runs = f"median of {ROUNDS} interleaved runs (min–max)" if ROUNDS > 1 else "1 run"
    fan_shape = (f"**Fan-out**: {CLIENTS} subscribers, 1 publisher, {SIZE}-byte messages; burst = flat out (at "
                 f"most 256 messages not yet delivered everywhere), paced = {PACED_RATE} msg/s = "
                 f"{PACED_RATE * CLIENTS:,} deliveries/s; RSS over {IDLE_CONN} idle subscribed connections.")
    rooms_shape = (f"**Rooms**: {ROOMS} rooms × {MEMBERS} members ({ROOMS * MEMBERS:,} clients), every member "
                   f"publishing into its room, {ROOMS_RATE:,} msg/s in total = {ROOMS_RATE * MEMBERS:,} "
                   f"deliveries/s (each member gets its room's messages, its own included); {SIZE}-byte messages.")
    common = (f"{DURATION:g} s of publishing per run; every cell is the {runs}; server pinned to CPU "
              f"{SERVER_CORE} with one worker thread, load to CPU {LOAD_CORE}.")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    md = [f"Run {stamp} on {mach['cpu']} ({mach['cpus']} CPUs), {mach['uname']}, {mach['mem']} RAM; "
          f"load average at start {mach['loadavg_at_start']}, at the end {loadavg_end}.", "", common, ""]
    if any(m in SHAPES for m in ("idle", "burst", "paced")):
        md += [fan_shape, "", table(results, FANOUT_COLS, ("burst", "paced"), "lost/dup burst ; paced"), ""]
    if "rooms" in SHAPES:
        md += [rooms_shape, "", table(results, ROOMS_COLS, ("rooms",), "lost/dup"), ""]
    md += notes(results)
    if md[-1]:
        md.append("")
    md.append("Ratios are of the medians, the first row's divided by the second's: above 1x is better for "
              "deliveries/s, below 1x is better for every other column. garou-quic-sync-normal is garou-quic "
              "with `sqlite_synchronous = \"normal\"` (no fsync per group commit).")
    text = "\n".join(md) + "\n"
    print(text)
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    name = os.environ.get("OUT", "latest")  # an A/B run keeps the latest table
    (out / f"{name}.md").write_text(text)
    (out / f"{name}.json").write_text(json.dumps(
        {"when": stamp, "machine": dict(mach, loadavg_at_end=loadavg_end),
         "shape": {"clients": CLIENTS, "size": SIZE, "duration_s": DURATION, "paced_rate": PACED_RATE,
                   "idle_connections": IDLE_CONN, "steady_window_s": STEADY_S, "rounds": ROUNDS,
                   "rooms": ROOMS, "members": MEMBERS, "rooms_rate": ROOMS_RATE, "shapes": SHAPES,
                   "quick": QUICK},
         "results": results}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
