"""Slow clients on loopback, bounded in count and time: each connection sends
a request's headers one byte at a time and never finishes them (slowloris),
while a fast client measures how long ordinary requests take meanwhile.

    python -m harness.slowloris PORT [CONNECTIONS] [SECONDS]

prints the fast requests' figures (the numbers in docs/security.md)."""

from __future__ import annotations

import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field

import requests

HEADERS = b"GET /healthcheck HTTP/1.1\r\nHost: slowloris\r\n" + b"X-Slow: " + b"s" * 4000


@dataclass
class Slowloris:
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
                        s.send(HEADERS[sent % len(HEADERS) : sent % len(HEADERS) + 1])
                        alive.append((s, sent + 1))
                    except OSError:  # reset or closed by the server
                        self.dropped += 1
                        s.close()
                socks = alive
                self._stop.wait(self.byte_every)
        finally:
            for s, _ in socks:
                s.close()


@dataclass
class Timings:
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("inf")

    def summary(self) -> str:
        if not self.seconds:
            return f"0 answered, {len(self.failures)} failed"
        return (
            f"{len(self.seconds)} answered, {len(self.failures)} failed; "
            f"p50 {statistics.median(self.seconds) * 1000:.0f} ms, p99 {self.percentile(99) * 1000:.0f} ms, "
            f"max {max(self.seconds) * 1000:.0f} ms"
        )


def fast_requests(
    url: str, seconds: float, pause: float = 0.1, timeout: float = 10, headers: dict[str, str] | None = None
) -> Timings:
    """GET url back to back (one at a time) for `seconds`: the latency a normal client sees."""
    out = Timings()
    headers = {"Connection": "close", **(headers or {})}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.monotonic()
        try:
            r = requests.get(url, timeout=timeout, headers=headers)
            if r.status_code == 200:
                out.seconds.append(time.monotonic() - start)
            else:
                out.failures.append(str(r.status_code))
        except requests.RequestException as e:
            out.failures.append(type(e).__name__)
        time.sleep(pause)
    return out


def measure(port: int, connections: int = 200, seconds: float = 30) -> tuple[Slowloris, Timings]:
    """Fast requests during a slowloris attack, starting once the slow connections are open."""
    with Slowloris(port, connections, seconds + 10) as attack:
        time.sleep(3)
        timings = fast_requests(f"http://127.0.0.1:{port}/healthcheck", seconds)
    return attack, timings


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    attack, timings = measure(*args)
    print(f"{attack.opened} slow connections, {attack.dropped} dropped by the server; fast GETs: {timings.summary()}")
