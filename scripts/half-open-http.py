#!/usr/bin/env python3
"""Half-open HTTP attack on a local Garou gateway, with RSS and /health figures.

Opens many TCP connections to the HTTP port and sends half a request on each (a request
line and one header, never the blank line), holds them, then closes them all. Meanwhile it
probes /health from another loopback address (127.0.0.2) and samples the gateway's RSS.
Loopback only; bounded in connections and time; stops by itself.

    python3 scripts/half-open-http.py --port 8080 --pid $(pgrep -n garou) \
        --connections 20000 --hold 20 --after 15
"""
import argparse
import multiprocessing as mp
import os
import resource
import socket
import time
import urllib.request

HALF = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: "


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return float("nan")
    return float("nan")


def worker(port, n, hold, sources, index, out):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks, failed = [], 0
    deadline = time.monotonic() + 60
    for i in range(n):
        if time.monotonic() > deadline:
            break
        s = socket.socket()
        s.settimeout(1.0)
        # Sources: 127.0.0.1, or with --sources N, 127.1.x.y spread over N addresses.
        k = (index * n + i) % sources
        source = "127.0.0.1" if sources == 1 else f"127.1.{k // 250}.{k % 250 + 1}"
        try:
            s.bind((source, 0))
            s.connect(("127.0.0.1", port))
            s.sendall(HALF)
            socks.append(s)
        except OSError:
            failed += 1
            s.close()
    opened = len(socks)
    time.sleep(hold)
    closed_by_server = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed_by_server += 1
        except BlockingIOError:
            pass
        except OSError:
            closed_by_server += 1
        s.close()
    out.put((opened, failed, closed_by_server))


def health(port):
    s = socket.socket()
    s.settimeout(3.0)
    t = time.monotonic()
    try:
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = s.recv(64)
        ok = data.startswith(b"HTTP/1.1 200")
    except OSError:
        ok = False
    finally:
        s.close()
    return ok, time.monotonic() - t


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--connections", type=int, default=20000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--hold", type=float, default=20)
    p.add_argument("--after", type=float, default=15)
    p.add_argument("--sources", type=int, default=1, help="attacking loopback addresses")
    a = p.parse_args()
    a.connections = min(a.connections, 40000)
    before = rss_mb(a.pid)
    out = mp.Queue()
    procs = [
        mp.Process(
            target=worker,
            args=(a.port, a.connections // a.workers, min(a.hold, 120), max(1, min(a.sources, 60000)), w, out),
        )
        for w in range(a.workers)
    ]
    for pr in procs:
        pr.start()
    peak, probes, fails, worst = before, 0, 0, 0.0
    while any(pr.is_alive() for pr in procs):
        peak = max(peak, rss_mb(a.pid))
        ok, took = health(a.port)
        probes += 1
        fails += not ok
        worst = max(worst, took)
        time.sleep(0.5)
    results = [out.get() for _ in procs]
    for pr in procs:
        pr.join()
    during = peak
    time.sleep(min(a.after, 120))
    after = rss_mb(a.pid)
    ok_after, _ = health(a.port)
    opened = sum(r[0] for r in results)
    print(f"connections attempted {a.connections}, connected+sent {opened}, "
          f"connect failures {sum(r[1] for r in results)}, "
          f"closed by the server before the end {sum(r[2] for r in results)}")
    print(f"/health from 127.0.0.2 during the attack: {probes - fails}/{probes} ok, worst {worst * 1000:.0f} ms")
    print(f"RSS MB: before {before:.1f}, peak {during:.1f}, {a.after:.0f} s after {after:.1f}; "
          f"/health after: {'ok' if ok_after else 'FAILED'}")


if __name__ == "__main__":
    main()
