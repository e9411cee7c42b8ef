"""Load on loopback: client threads sending GETs, each result kept with its
start and end time. Closed loop by default (each client sends its next
request after the last answer and a pause); with `rate`, an open loop (one
request every 1/rate s, whatever the answers). "Refused" (nothing listening:
a client or balancer retries elsewhere) is told apart from other failures
(5xx, reset, cut, timeout): some stops allow it, others count it as failed."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from harness.figures import percentile


def is_refused(error: BaseException | None) -> bool:
    """Nothing listening: a client or balancer retries elsewhere. Not a reset or a cut."""
    while error is not None:
        if isinstance(error, ConnectionRefusedError):
            return True
        error = error.__cause__ or error.__context__ or (error.args[0] if error.args else None)
        if not isinstance(error, BaseException):
            return False
    return False


@dataclass
class Result:
    start: float
    end: float
    status: int | None  # None: no HTTP answer
    error: str | None = None  # what went wrong instead of an answer
    refused: bool = False  # the connection was refused: nothing listened

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Load:
    """`clients` threads sending GET `path` (with `token`, if any) while
    `sending()` says so, for at most `max_seconds`; use as a context manager
    or with start() and stop()."""

    url: str
    token: str = ""
    path: str = "/v2/plugins"
    clients: int = 4
    pause: float = 0.02  # between a client's requests: ~4 x 30 req/s at most
    rate: float = 0  # > 0: an open loop of `rate` requests/s, each from its own thread (clients unused)
    timeout: float = 60
    max_seconds: float = 120  # a hard bound, whatever the test does
    sending: Callable[[], bool] = lambda: True  # a gate: while False, clients wait
    results: list[Result] = field(default_factory=list)

    def start(self) -> Load:
        self._stop = threading.Event()
        self._deadline = time.monotonic() + self.max_seconds
        target = self._pacer if self.rate > 0 else self._client
        self._threads = [
            threading.Thread(target=target, daemon=True) for _ in range(1 if self.rate > 0 else self.clients)
        ]
        for t in list(self._threads):  # a copy: the pacer adds its request threads, started
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:  # the pacer first: the request threads it adds until then are joined too
            t.join(timeout=self.timeout + 10)

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _one(self) -> None:
        headers = {"Connection": "close"} | ({"X-Auth-Token": self.token} if self.token else {})
        start = time.monotonic()
        try:
            r = requests.get(f"{self.url}{self.path}", headers=headers, timeout=self.timeout)
            result = Result(start, time.monotonic(), r.status_code)
        except requests.RequestException as e:
            result = Result(start, time.monotonic(), None, type(e).__name__, is_refused(e))
        self.results.append(result)  # list.append is atomic

    def _client(self) -> None:
        while self._running():
            if not self.sending():
                self._stop.wait(0.05)
                continue
            self._one()
            self._stop.wait(self.pause)

    def _pacer(self) -> None:
        while self._running():
            if self.sending():
                t = threading.Thread(target=self._one, daemon=True)
                t.start()
                self._threads.append(t)
            self._stop.wait(1 / self.rate)

    def warm(self, successes: int = 20, timeout: float = 60) -> None:
        """Wait until `successes` requests succeeded: every worker's first
        request is slow (keystonemiddleware fetches its own token then)."""
        deadline = time.monotonic() + timeout
        while sum(r.ok for r in self.results) < successes:
            if time.monotonic() > deadline:
                raise AssertionError(f"load not warm after {timeout} s: {self.summary()}")
            time.sleep(0.05)

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.results)

    def failed(self, started_before: float = float("inf"), *, count_refused: bool = True) -> list[Result]:
        """Requests started before `started_before` and not answered 200 (refused ones too, unless told not)."""
        return [r for r in self.results if not r.ok and r.start < started_before and (count_refused or not r.refused)]

    def refused(self, started_before: float = float("inf")) -> list[Result]:
        return [r for r in self.results if r.refused and r.start < started_before]

    def percentile(self, p: float) -> float:
        """Of the answered requests' seconds (nearest rank); inf when none was answered."""
        return percentile([r.seconds for r in self.results if r.ok], p) if self.ok else float("inf")

    def summary(self) -> str:
        failed = self.failed()
        errors = sorted({r.error or str(r.status) for r in failed})
        latency = (
            f", p50 {self.percentile(50) * 1000:.0f} ms, p99 {self.percentile(99) * 1000:.0f} ms" if self.ok else ""
        )
        refused = f" ({len(self.refused())} refused)" if self.refused() else ""
        return (
            f"{len(self.results)} requests, {self.ok} ok{latency}, {len(failed)} failed{refused} {errors or ''}".strip()
        )


# The upload a stop must let finish (docs/signals.md): 4 MiB at 1 MiB/s, the
# stop signal UPLOAD_SIGNAL_AT seconds after its head.
UPLOAD_BYTES = 4 * 2**20
UPLOAD_SECONDS = 4.0
UPLOAD_SIGNAL_AT = 1.5


def trickle_put(
    url: str,
    token: str,
    result: dict[str, float | int | str],
    seconds: float = UPLOAD_SECONDS,
    size: int = UPLOAD_BYTES,
) -> None:
    """A request in flight for `seconds`: its `size`-byte body arrives in
    pieces (to nginx, or with the direct front to a worker thread). Records
    the status (0: no HTTP answer) and when the answer came: Sahara's own is
    404 (no such cluster). Used where a real engine answers the sync RPC."""
    body = b'{"resize_node_groups": []}'.ljust(size - 1) + b"\n"
    head = (
        "PUT /v2/clusters/00000000-0000-0000-0000-000000000000 HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nX-Auth-Token: {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    try:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=60) as s:
            result["local_port"] = s.getsockname()[1]  # which pod a Service sent it to (conntrack)
            s.sendall(head.encode())
            result["sent_head"] = time.monotonic()
            step = max(1, len(body) // 64)
            pieces = [body[i : i + step] for i in range(0, len(body), step)]
            for piece in pieces:
                time.sleep(seconds / len(pieces))
                s.sendall(piece)
            result["sent_body"] = time.monotonic()
            answer = s.makefile("rb").readline().decode()
        result["status"] = int(answer.split()[1]) if answer else 0
    except OSError as e:
        result["status"], result["error"] = 0, repr(e)
    result["end"] = time.monotonic()
