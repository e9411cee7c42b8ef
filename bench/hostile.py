"""Probes of what a hostile or careless client can do to a running API
(docs/security.md, issue 14), each returning plain figures: slow request
heads (slowloris), oversized heads, oversized and slow bodies, idle
keep-alive connections, and what a reload (HUP) or a killed worker costs
clients under load. Used by `make hostile` (bench/hostile_run.py) and by
tests/integration/test_front.py; every probe is bounded in time."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from harness.load import Load
from harness.slowloris import Slowloris, fast_requests

HEAD = b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n"
# The three oversized heads, a 15 KB one (a big token fits), and 700 small headers.
HEADS = {
    "15 KB header": HEAD + b"X-Big: " + b"a" * 15000 + b"\r\n\r\n",
    "700 small headers": HEAD + b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 14) for i in range(700)) + b"\r\n",
    "70 KB header": HEAD + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n",
    "1 MB header": HEAD + b"X-Big: " + b"a" * 2**20 + b"\r\n\r\n",
    "700 headers": HEAD + b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100) for i in range(700)) + b"\r\n",
}


def raw(port: int, data: bytes, timeout: float = 30, chunk_pause: float = 0) -> str:
    """Send bytes; the answer's status code, or how the connection ended without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        answer = b""
        try:
            for i in range(0, len(data), 65536):
                s.sendall(data[i : i + 65536])
                time.sleep(chunk_pause)
        except ConnectionError:
            pass  # a server may answer and close before the whole request is in: read on
        try:
            while chunk := s.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer:
                    break
        except ConnectionResetError:
            return answer.split(b" ", 2)[1].decode() if answer else "connection reset"
        except TimeoutError:
            return answer.split(b" ", 2)[1].decode() if answer else "no answer (timeout)"
    return answer.split(b" ", 2)[1].decode() if answer else "closed, no response"


def heads(port: int) -> dict[str, str]:
    return {name: raw(port, data) for name, data in HEADS.items()}


def bodies(port: int, limit_bytes: int, token: str) -> dict[str, str]:
    """A body over the limit, declared (Content-Length) and real (chunked, no length)."""
    declared = b"POST /v2/clusters HTTP/1.1\r\nHost: x\r\nX-Auth-Token: %s\r\nContent-Length: %d\r\n\r\n"
    chunk = b"a" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(limit_bytes // len(chunk) + 1))
    real = b"POST /v2/clusters HTTP/1.1\r\nHost: x\r\nX-Auth-Token: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
    return {
        "declared body over the limit": raw(port, declared % (token.encode(), limit_bytes + 1)),
        "real body over the limit (chunked)": raw(port, real % token.encode() + body + b"0\r\n\r\n"),
    }


def stats(run_dir: str | Path) -> dict:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(Path(run_dir) / "uwsgi-stats.sock"))
        return json.loads(b"".join(iter(lambda: s.recv(65536), b"")))


def busy_threads(run_dir: str | Path) -> int:
    """Worker threads inside a request now (uWSGI's stats socket: a core's in_request)."""
    return sum(c["in_request"] for w in stats(run_dir)["workers"] for c in w.get("cores", []))


def slow_bodies(port: int, run_dir: str | Path | None, clients: int = 40, seconds: float = 8) -> dict:
    """Unauthenticated POSTs whose bodies come at 1 B/s: the most worker threads
    they held at once (uWSGI only), and whether a fast client got through."""
    deadline = time.monotonic() + 10  # start from idle workers: an earlier request may still be closing
    while run_dir and busy_threads(run_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    socks = []
    for _ in range(clients):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"POST /v2/clusters HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        socks.append(s)
    most = 0
    t_end = time.monotonic() + seconds
    try:
        while time.monotonic() < t_end:
            for s in socks:
                with contextlib.suppress(OSError):
                    s.send(b"a")
            if run_dir:
                most = max(most, busy_threads(run_dir))
            time.sleep(1)
        fast = fast_requests(f"http://127.0.0.1:{port}/healthcheck", seconds=2, timeout=5)
    finally:
        for s in socks:
            s.close()
    return {"clients": clients, "most_busy_threads": most if run_dir else None, "fast": fast.summary()}


def idle_keepalive(port: int, url: str, token: str, connections: int = 500, seconds: float = 5) -> dict:
    """`connections` clients that each sent one keep-alive request and then hold
    their connection idle; meanwhile a fast client's GETs."""
    socks = []
    try:
        for _ in range(connections):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        answered: set[socket.socket] = set()
        deadline = time.monotonic() + 10  # all of them answered, or 10 s
        while len(answered) < len(socks) and time.monotonic() < deadline:
            ready, _, _ = select.select([s for s in socks if s not in answered], [], [], 0.5)
            for s in ready:
                with contextlib.suppress(OSError):
                    s.recv(65536)
                answered.add(s)
        time.sleep(0.5)
        kept = 0
        for s in socks:  # still open (a peek that would block) or closed by the server (EOF)
            s.setblocking(False)
            try:
                kept += s.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                kept += 1
            except OSError:
                pass
        fast = fast_requests(f"{url}/v2/plugins", seconds, timeout=5, headers={"X-Auth-Token": token})
    finally:
        for s in socks:
            s.close()
    return {
        "connections": connections,
        "answered": len(answered),
        "held_open_by_server": kept,
        "fast_answered": len(fast.seconds),
        "fast_failed": len(fast.failures),
        "p99_ms": round(fast.percentile(99) * 1000, 1),
    }


def slowloris(port: int, url: str, token: str, connections: int = 200, seconds: float = 20) -> dict:
    """The issue's probe: `connections` heads at 1 B/s while an authenticated GET
    /v2/plugins goes every 0.1 s with a 5 s timeout."""
    with Slowloris(port, connections, seconds + 10) as attack:
        time.sleep(3)
        fast = fast_requests(f"{url}/v2/plugins", seconds, timeout=5, headers={"X-Auth-Token": token})
    sent = len(fast.seconds) + len(fast.failures)
    return {
        "slow_connections": attack.opened,
        "answered": len(fast.seconds),
        "sent": sent,
        "p99_ms": round(fast.percentile(99) * 1000, 1) if fast.seconds else None,
    }


@dataclass
class Disruption:
    requests: int
    failed: int
    errors: list[str] = field(default_factory=list)
    in_flight: int | None = None


def under_load(url: str, token: str, act: Callable[[], object], seconds: float = 6, clients: int = 4) -> Disruption:
    """Load for `seconds`, `act()` after 1.5 s; act may return how many requests it expected to cut."""
    with Load(url, token, clients=clients, pause=0.0, max_seconds=seconds + 60) as load:
        time.sleep(1.5)
        in_flight = act()
        time.sleep(seconds - 1.5)
    bad = [r for r in load.results if not r.ok]
    return Disruption(len(load.results), len(bad), sorted({r.error or str(r.status) for r in bad}), in_flight)


def hup(url: str, token: str, master: int, seconds: float = 8) -> Disruption:
    """A graceful reload (HUP to uWSGI's master, or to upstream's parent) under load."""
    return under_load(url, token, lambda: os.kill(master, signal.SIGHUP), seconds)


def kill_worker(url: str, token: str, master: int, run_dir: str | Path | None) -> Disruption:
    """kill -9 of the busiest worker under load; how many requests it held (uWSGI's stats)."""

    def act() -> int | None:
        if run_dir:
            worker = max(stats(run_dir)["workers"], key=lambda w: sum(c["in_request"] for c in w["cores"]))
            victim, held = worker["pid"], sum(c["in_request"] for c in worker["cores"])
        else:
            parent = psutil.Process(master)
            victim, held = max(c.pid for c in parent.children() if c.name() == parent.name()), None
        os.kill(victim, signal.SIGKILL)
        return held

    return under_load(url, token, act)


def tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (uWSGI's master: workers, nginx, exporter)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


class Sampler:
    """CPU seconds of a set of processes between start and stop."""

    def __init__(self, procs: list[psutil.Process]) -> None:
        self.procs = procs

    def cpu(self) -> float:
        total = 0.0
        for p in self.procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total
