"""A bounded load on loopback: a few client threads sending authenticated
GETs back to back, each result kept with its start and end time."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import requests


@dataclass
class Result:
    start: float
    end: float
    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 500


@dataclass
class Load:
    url: str
    token: str
    path: str = "/v2/plugins"
    clients: int = 4
    pause: float = 0.02  # between a client's requests: ~4 x 30 req/s at most
    max_seconds: float = 120  # a hard bound, whatever the test does
    results: list[Result] = field(default_factory=list)

    def __enter__(self) -> Load:
        self._stop = threading.Event()
        self._deadline = time.monotonic() + self.max_seconds
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def _client(self) -> None:
        headers = {"X-Auth-Token": self.token, "Connection": "close"}
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            start = time.monotonic()
            try:
                r = requests.get(f"{self.url}{self.path}", headers=headers, timeout=60)
                self.results.append(Result(start, time.monotonic(), r.status_code))
            except requests.RequestException as e:
                self.results.append(Result(start, time.monotonic(), None, type(e).__name__))
            time.sleep(self.pause)

    def warm(self, successes: int = 20, timeout: float = 60) -> None:
        """Wait until `successes` requests succeeded: every worker's first
        request is slow (keystonemiddleware fetches its own token then)."""
        deadline = time.monotonic() + timeout
        while sum(r.ok for r in self.results) < successes:
            if time.monotonic() > deadline:
                raise AssertionError(f"load not warm after {timeout} s: {self.summary()}")
            time.sleep(0.05)

    def failed(self, started_before: float | None = None) -> list[Result]:
        return [r for r in self.results if not r.ok and (started_before is None or r.start < started_before)]

    def summary(self) -> str:
        errors = {r.error or str(r.status) for r in self.failed()}
        return f"{len(self.results)} requests, {len(self.failed())} failed {sorted(errors) if errors else ''}".strip()


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
