#!/usr/bin/env python3
"""Side-by-side fan-out benchmark: Garou against the servers a user would pick instead.

Run through bench/compare.sh, which installs and builds what this needs. Stdlib only.

Every peer gets the same shape: one publisher, CLIENTS subscribers in one room, SIZE-byte messages,
a burst run (flat out, bounded in-flight window) and a paced run (PACED_RATE messages/s, i.e.
PACED_RATE * CLIENTS deliveries/s), then IDLE_CONN idle subscribed connections for RSS. The server
is pinned to SERVER_CORE with one worker thread, the load to LOAD_CORE; only the server's CPU is
measured, from /proc/PID/stat (utime + stime of all its threads).

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

CLIENTS = int(os.environ.get("CLIENTS", 100))
SIZE = int(os.environ.get("SIZE", 64))
DURATION = float(os.environ.get("DURATION", 10))
PACED_RATE = int(os.environ.get("PACED_RATE", 100))
IDLE_CONN = int(os.environ.get("IDLE_CONN", 1000))
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

ALL_PEERS = ["garou-quic", "garou-websocket", "socketio", "socketio-tls", "moq-relay", "nats", "ws"]
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
    """Samples the server's CPU ticks every 100 ms until stopped."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.samples, self.done = pid, [], threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                self.samples.append((time.time(), cpu_ticks(self.pid)))
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


def run_fanout(server, cmd, env=None):
    """One bounded load run with the server's CPU sampled; returns the client's JSON plus CPU."""
    argv, full_env = load_cmd(cmd, env)
    sampler = Sampler(server.pid)
    sampler.start()
    t_start = time.time()
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
    return res


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


def node_load(peer, url):
    base = ["node", str(NODE / "load.mjs")]
    return {
        "fanout": lambda rate: base + ["fanout", "--peer", peer, "--url", url, "--clients", str(CLIENTS),
                                       "--rate", str(rate), "--size", str(SIZE), "--duration", str(DURATION)],
        "idle": base + ["idle", "--peer", peer, "--url", url, "--connections", str(IDLE_CONN), "--hold", "50"],
    }


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


def peer_spec(name, tmp):
    """(server command, port, udp?, env, load commands) for a peer, or a reason it cannot run."""
    one = {"TOKIO_WORKER_THREADS": "1"}
    if name.startswith("garou"):
        if not os.access(GAROU, os.X_OK):
            return f"no garou binary at {GAROU}"
        q, h = PORT_BASE, PORT_BASE + 1
        data = tmp / f"{name}-data"  # a fresh store per row
        srv = [GAROU, "serve", "--quic", f"127.0.0.1:{q}", "--http", f"127.0.0.1:{h}", "--data", str(data)]
        transport = "websocket" if name == "garou-websocket" else "quic"
        target = f"127.0.0.1:{h}" if transport == "websocket" else f"127.0.0.1:{q}"
        # garou bench counts the publisher as a room member (it gets its own message back, as in a
        # chat), so CLIENTS subscribers plus the publisher is CLIENTS + 1 clients.
        fan = lambda rate: [GAROU, "bench", "fanout", "--server", target, "--insecure", "--clients",  # noqa: E731
                            str(CLIENTS + 1), "--publishers", "1", "--rate", str(rate), "--size", str(SIZE),
                            "--duration", str(DURATION), "--transport", transport, "--json"]
        idle = [GAROU, "bench", "connections", "--server", target, "--insecure", "--connections",
                str(IDLE_CONN), "--server-pid", "{PID}", "--hold", "5", "--json"]
        if transport == "websocket":
            idle[-1:-1] = ["--transport", "websocket"]
        # The load comes from one address and publishes flat out: lift the per-IP connection
        # rate and the per-client command rate (abuse limits; the peers have none).
        return {"server": srv, "port": q, "udp": True, "env": dict(one, RUST_LOG="warn", **GAROU_BENCH_LIMITS),
                "fanout": fan, "idle_self": idle, "load_env": one}
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
        return {"server": srv, "port": port, "udp": False, "env": {}, **node_load(kind, url)}
    if name == "nats":
        if not os.access(NATS, os.X_OK):
            return "nats-server not installed"
        port = PORT_BASE + 22
        srv = [NATS, "-a", "127.0.0.1", "-p", str(port)]
        return {"server": srv, "port": port, "udp": False, "env": {"GOMAXPROCS": "1"},
                **node_load("nats", f"nats://127.0.0.1:{port}")}
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


def bench_peer(name, tmp):
    spec = peer_spec(name, tmp)
    if isinstance(spec, str):
        return {"skipped": spec}
    if name.startswith("garou") and not garou_has_fanout():
        return {"skipped": f"{GAROU} has no `bench fanout` subcommand yet"}
    log(f"== {name}: starting server")
    try:
        srv = Server(name, spec["server"], spec["port"], spec["udp"], spec["env"])
    except (RuntimeError, OSError) as e:
        return {"skipped": str(e)}
    LIVE.append(srv.proc)
    res = {"server_cmd": " ".join(spec["server"]), "server_env": spec["env"]}
    load_env = spec.get("load_env")
    try:
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
            log(f"== {name}: {mode}")
            res[mode] = run_fanout(srv, spec["fanout"](rate), load_env)
            log(f"   {json.dumps(res[mode])}")
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


COLS = [
    ("burst deliveries/s", lambda r: r.get("burst", {}).get("deliveries_per_sec"), 0),
    ("CPU-s/100k burst", lambda r: r.get("burst", {}).get("cpu_s_per_100k"), 2),
    ("CPU-s/100k paced", lambda r: r.get("paced", {}).get("cpu_s_per_100k"), 2),
    ("paced p50 ms", lambda r: r.get("paced", {}).get("p50_ms"), 1),
    ("paced p99 ms", lambda r: r.get("paced", {}).get("p99_ms"), 1),
    ("RSS/idle conn KiB", lambda r: r.get("idle", {}).get("rss_per_conn_kb"), 1),
    # Under 100 % the load client, not the server, set the burst pace: read deliveries/s with that in mind.
    ("server core busy in burst %", lambda r: pct_of(r.get("burst", {}).get("server_cpu_per_s")), 0),
]


def pct_of(v):
    return v * 100 if v is not None else None


def lost_cell(r):
    parts = []
    for mode in ("burst", "paced"):
        m = r.get(mode, {})
        if "error" in m:
            parts.append("err")
        elif m:
            parts.append(f"{m.get('lost', 0)}/{m.get('duplicated', 0)}")
    return " ; ".join(parts) or "-"


def table(results):
    head = ["peer"] + [c[0] for c in COLS] + ["lost/dup burst ; paced"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for name, r in results.items():
        if "skipped" in r:
            rows.append(f"| {name} | " + " | ".join(["-"] * (len(head) - 1)) + " |")
            notes.append(f"- {name}: not run ({r['skipped']})")
            continue
        cells = [fmt(f(r), d) for _, f, d in COLS]
        for mode in ("idle", "burst", "paced"):
            if "error" in r.get(mode, {}):
                notes.append(f"- {name} {mode}: {r[mode]['error']}")
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {lost_cell(r)} |")
    ratio_rows = []
    for g in ("garou-quic", "garou-websocket"):
        gr = results.get(g)
        if not gr or "skipped" in gr:
            continue
        for name, r in results.items():
            if name.startswith("garou") or "skipped" in r:
                continue
            cells = []
            for col, f, _ in COLS:
                a, b = f(gr), f(r)
                if col.startswith("server core busy"):
                    cells.append("")
                    continue
                cells.append(f"{a / b:.2f}x" if a is not None and b not in (None, 0) else "-")
            ratio_rows.append(f"| {g} / {name} | " + " | ".join(cells) + " | |")
    if ratio_rows:
        rows += ratio_rows
    return "\n".join(rows), notes


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
    results = {}
    with tempfile.TemporaryDirectory(prefix="garou-bench-") as d:
        tmp = Path(d)
        try:
            for name in peers:
                results[name] = bench_peer(name, tmp)
        finally:
            cleanup()
    tbl, notes = table(results)
    shape = (f"{CLIENTS} subscribers, 1 publisher, {SIZE}-byte messages; burst = flat out (at most 256 "
             f"messages not yet delivered everywhere), paced = {PACED_RATE} msg/s = {PACED_RATE * CLIENTS:,} "
             f"deliveries/s; {DURATION:g} s per run; RSS over {IDLE_CONN} idle subscribed connections; "
             f"server pinned to CPU {SERVER_CORE} with one worker thread, load to CPU {LOAD_CORE}.")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    md = [f"Run {stamp} on {mach['cpu']} ({mach['cpus']} CPUs), {mach['uname']}, {mach['mem']} RAM; "
          f"load average at start {mach['loadavg_at_start']}.", "",
          shape, "", tbl, ""]
    if notes:
        md += notes + [""]
    md.append("Ratios are Garou divided by the peer: above 1x is better for deliveries/s, below 1x is better "
              "for every other column.")
    text = "\n".join(md) + "\n"
    print(text)
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.md").write_text(text)
    (out / "latest.json").write_text(json.dumps(
        {"when": stamp, "machine": mach, "shape": {"clients": CLIENTS, "size": SIZE, "duration_s": DURATION,
                                                    "paced_rate": PACED_RATE, "idle_connections": IDLE_CONN,
                                                    "steady_window_s": STEADY_S},
         "results": results}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
