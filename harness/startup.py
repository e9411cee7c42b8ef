"""A start timed from outside: seconds until a port first accepts a TCP
connection, until a URL first answers 200, until marker lines first appear
in a log; and a wait until a deployment runs its workers. The bench's cold
starts (C4), `make hostile`'s restarts and bench/front_candidates.py."""

from __future__ import annotations

import socket
import threading
import time

from harness.procs import Api, Proc, serves, wait_for


def _exited(proc: Proc) -> RuntimeError | None:
    if proc.popen.poll() is None:
        return None
    return RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_text()[-3000:]}")


def listening(port: int, t0: float, proc: Proc, limit: float = 90) -> float:
    """Seconds from t0 until something accepts TCP connections on the port;
    TimeoutError after `limit` s, RuntimeError if `proc` exits first."""
    while time.monotonic() - t0 < limit:
        if error := _exited(proc):
            raise error
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return time.monotonic() - t0
        except OSError:
            time.sleep(0.01)
    raise TimeoutError(f"nothing listens on port {port} {limit:g} s after the start")


def first_200(url: str, token: str, t0: float, proc: Proc, limit: float = 90, every: float = 0.01) -> float:
    """Seconds from t0 until GET url answers 200 (polled every `every` s);
    TimeoutError after `limit` s, RuntimeError if `proc` exits first."""
    while time.monotonic() - t0 < limit:
        if error := _exited(proc):
            raise error
        if serves(url, token):
            return time.monotonic() - t0
        time.sleep(every)
    raise TimeoutError(f"no 200 from {url} within {limit:g} s of the start")


def wait_workers(api: Api, count: int, limit: float = 30) -> None:
    """Until `api` runs `count` workers (not its front or exporter)."""
    wait_for(lambda: len(api.worker_pids()) >= count, limit, f"{api.name}: {count} workers up")


class LogWatch:
    """When each marker first appears in a log, seconds after t0 (polled every 5 ms)."""

    def __init__(self, proc: Proc, t0: float, markers: dict[str, str]) -> None:
        self.proc, self.t0, self.markers = proc, t0, markers
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set() and len(self.seen) < len(self.markers):
            try:
                text = self.proc.log_text()
            except OSError:
                text = ""
            now = time.monotonic() - self.t0
            for name, marker in self.markers.items():
                if name not in self.seen and marker in text:
                    self.seen[name] = round(now, 3)
            self._stop.wait(0.005)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return self.seen
