"""Hostile and careless clients on loopback (docs/security.md, issue 14),
each bounded in time and returning plain figures: slow request heads
(slowloris), oversized heads, oversized and slow bodies, idle keep-alive
connections, and what a reload (HUP) or a killed worker costs clients under
load (`respawn`: how long until a new worker waits for connections). Used
by tests/integration (test_security.py, test_front.py), by `make hostile`
(bench/hostile_run.py), bench/front_candidates.py and `make bench`.

    python -m harness.hostile PORT [CONNECTIONS] [SECONDS]

prints fast requests' figures during a slowloris attack (the numbers in
docs/security.md)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from harness.load import Load
from harness.procs import Proc, busy_threads, uwsgi_master, uwsgi_stats

# A task blocked in one of these waits for a connection (or its accept lock).
ACCEPT_WAITS = {"43", "288", "232", "281", "7", "271", "23", "270"}  # accept, accept4, epoll_wait, epoll_pwait, poll...
HEAD = b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n"


def big_header(size: int) -> bytes:
    """A head with one header of `size` bytes."""
    return HEAD + b"X-Big: " + b"a" * size + b"\r\n\r\n"


def many_headers(count: int, size: int) -> bytes:
    """A head with `count` headers of `size` bytes each."""
    return HEAD + b"".join(b"X-H%d: %s\r\n" % (i, b"b" * size) for i in range(count)) + b"\r\n"


def long_url(query: bytes) -> bytes:
    return b"GET /healthcheck?" + query + b" HTTP/1.1\r\nHost: x\r\n\r\n"


# The three oversized heads, a 15 KB one (a big token fits), and 700 small headers.
HEADS = {
    "15 KB header": big_header(15000),
    "700 small headers": many_headers(700, 14),
    "70 KB header": big_header(70000),
    "1 MB header": big_header(2**20),
    "700 headers": many_headers(700, 100),
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
        try:  # the status line is all we need (nginx keeps the connection open after it)
            while chunk := s.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer:
                    break
        except ConnectionError:
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


def fast_requests(url: str, path: str, seconds: float, timeout: float = 10, token: str = "") -> Load:
    """One client sending GET `path` every 0.1 s for `seconds`: the latency a normal client sees."""
    with Load(url, token, path, clients=1, pause=0.1, timeout=timeout) as load:
        time.sleep(seconds)
    return load


SLOW_HEAD = b"GET /healthcheck HTTP/1.1\r\nHost: slowloris\r\n" + b"X-Slow: " + b"s" * 4000


@dataclass
class Slowloris:
    """Connections that each send a request head one byte at a time and never finish it."""

    port: int
    connections: int = 200
    seconds: float = 30  # hard bound on the whole attack
    byte_every: float = 1.0  # each connection sends one more byte this often
    opened: int = 0
    dropped: int = 0  # connections the server closed on us
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Slowloris:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        socks: list[tuple[socket.socket, int]] = []
        try:
            for _ in range(self.connections):
                try:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                except OSError:
                    break
                s.setblocking(False)
                socks.append((s, 0))
                self.opened += 1
            while not self._stop.is_set() and time.monotonic() < deadline:
                alive = []
                for s, sent in socks:
                    try:
                        s.send(SLOW_HEAD[sent % len(SLOW_HEAD) : sent % len(SLOW_HEAD) + 1])
                        alive.append((s, sent + 1))
                    except OSError:  # reset or closed by the server
                        self.dropped += 1
                        s.close()
                socks = alive
                self._stop.wait(self.byte_every)
        finally:
            for s, _ in socks:
                s.close()


def during_slowloris(
    port: int,
    connections: int = 200,
    seconds: float = 30,
    url: str = "",
    path: str = "/healthcheck",
    token: str = "",
    timeout: float = 10,
) -> tuple[Slowloris, Load]:
    """Fast requests (to `url`, by default the attacked port) during a slowloris
    attack, starting once the slow connections are open (3 s)."""
    with Slowloris(port, connections, seconds + 10) as attack:
        time.sleep(3)
        fast = fast_requests(url or f"http://127.0.0.1:{port}", path, seconds, timeout, token)
    return attack, fast


def slowloris(port: int, url: str, token: str, connections: int = 200, seconds: float = 20) -> dict:
    """The issue's probe: `connections` heads at 1 B/s while an authenticated GET
    /v2/plugins goes every 0.1 s with a 5 s timeout."""
    attack, fast = during_slowloris(port, connections, seconds, url, "/v2/plugins", token, timeout=5)
    return {
        "slow_connections": attack.opened,
        "answered": fast.ok,
        "sent": len(fast.results),
        "p99_ms": round(fast.percentile(99) * 1000, 1) if fast.ok else None,
    }


def slow_bodies(port: int, run_dir: str | Path | None, clients: int = 40, seconds: float = 8) -> dict:
    """Unauthenticated POSTs whose bodies come at 1 B/s: the most worker threads
    they held at once (uWSGI only), and whether a fast client got through."""
    deadline = time.monotonic() + 10  # start from idle workers: an earlier request may still be closing
    while run_dir and busy_threads(uwsgi_stats(run_dir)["workers"]) and time.monotonic() < deadline:
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
                most = max(most, busy_threads(uwsgi_stats(run_dir)["workers"]))
            time.sleep(1)
        fast = fast_requests(f"http://127.0.0.1:{port}", "/healthcheck", seconds=2, timeout=5)
    finally:
        for s in socks:
            s.close()
    return {
        "clients": clients,
        "most_busy_threads": most if run_dir else None,
        "fast": fast.summary(),
        "fast_failed": len(fast.failed()),
    }


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
        fast = fast_requests(url, "/v2/plugins", seconds, timeout=5, token=token)
    finally:
        for s in socks:
            s.close()
    return {
        "connections": connections,
        "answered": len(answered),
        "held_open_by_server": kept,
        "fast_answered": fast.ok,
        "fast_failed": len(fast.failed()),
        "p99_ms": round(fast.percentile(99) * 1000, 1),
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
    bad = load.failed()
    return Disruption(len(load.results), len(bad), sorted({r.error or str(r.status) for r in bad}), in_flight)


def hup(url: str, token: str, master: int, seconds: float = 8) -> Disruption:
    """A graceful reload (HUP to uWSGI's master, or to upstream's parent) under load."""
    return under_load(url, token, lambda: os.kill(master, signal.SIGHUP), seconds)


def kill_worker(url: str, token: str, master: int, run_dir: str | Path | None) -> Disruption:
    """kill -9 of the busiest worker under load; how many requests it held (uWSGI's stats)."""

    def act() -> int | None:
        if run_dir:
            worker = max(uwsgi_stats(run_dir)["workers"], key=lambda w: busy_threads([w]))
            victim, held = worker["pid"], busy_threads([worker])
        else:
            victim, held = a_worker(psutil.Process(master)), None
        os.kill(victim, signal.SIGKILL)
        return held

    return under_load(url, token, act)


def a_worker(master: psutil.Process) -> int:
    """The newest worker of a master: a child that runs the master's program (not nginx or the exporter)."""
    return max(c.pid for c in master.children() if c.name() == master.name())


def waiting_for_connections(pid: int) -> bool:
    """Every thread asleep, at least one blocked where a server waits for a connection."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        states = []
        for t in tasks:
            state = Path(f"/proc/{pid}/task/{t}/stat").read_text().rsplit(")", 1)[1].split()[0]
            call = Path(f"/proc/{pid}/task/{t}/syscall").read_text().split()[0]
            states.append((state, call))
    except OSError:
        return False
    return all(s == "S" for s, _ in states) and any(c in ACCEPT_WAITS for _, c in states)


@dataclass
class Respawn:
    new_process_s: float
    accepting_s: float
    requests: int
    failed: int
    max_latency_ms: float


def respawn(leader: Proc, url: str, token: str, rate: float = 20, settle: float = 1.0) -> Respawn:
    """kill -9 one worker under `rate` req/s; time until a new one waits for connections.
    Requests count from `settle` s before the kill to `settle` s after the new one is ready."""
    parent = psutil.Process(uwsgi_master(leader.pid))
    before = {c.pid for c in parent.children()}
    victim = a_worker(parent)
    # An open loop: requests keep going out at `rate` while the killed worker's are stuck.
    with Load(url, token, path="", rate=rate, timeout=10) as load:
        time.sleep(settle)
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        new, t_new, t_ready = None, None, None
        while time.monotonic() - t0 < 10 and t_ready is None:
            if new is None:
                spawned = {c.pid for c in parent.children()} - before
                if spawned:
                    new, t_new = spawned.pop(), time.monotonic() - t0
            if new is not None and waiting_for_connections(new):
                time.sleep(0.005)  # still waiting 5 ms later: not a pause in its start-up
                if waiting_for_connections(new):
                    t_ready = time.monotonic() - t0
            time.sleep(0.002)
        time.sleep(settle)
    if t_ready is None:
        raise RuntimeError(f"{leader.name}: no new worker waiting for connections 10 s after kill -9")
    window = [r for r in load.results if r.start >= t0 - settle]
    return Respawn(
        new_process_s=round(t_new, 3),
        accepting_s=round(t_ready, 3),
        requests=len(window),
        failed=sum(not r.ok for r in window),
        max_latency_ms=round(1000 * max(r.seconds for r in window), 1),
    )


if __name__ == "__main__":
    attack, fast = during_slowloris(*[int(a) for a in sys.argv[1:]])
    print(f"{attack.opened} slow connections, {attack.dropped} dropped by the server; fast GETs: {fast.summary()}")
