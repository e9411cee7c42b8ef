"""What the bench measures with tools of its own: a wrk run (req/s, latency,
the API's CPU per request, how busy the machine was) and MariaDB's connection
counters over a phase. The rest (waits, CPU and PSS of a process tree, a
worker killed under load) is the harness's: harness/startup.py,
harness/figures.py, harness/hostile.py."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from pathlib import Path

import psutil

from harness.figures import loadavg, machine_busy, tree_cpu_by_name
from harness.procs import Proc

LUA = Path(__file__).with_name("report.lua")


def wrk(url: str, token: str, connections: int, seconds: float, close: bool, leader: Proc) -> dict:
    """One wrk run; adds the API's CPU per request and how busy the machine was."""
    threads = min(2, connections)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(LUA)]
    argv += ["-H", f"X-Auth-Token: {token}"]
    if close:
        argv += ["-H", "Connection: close"]
    cpu0, (busy0, all0), load0 = tree_cpu_by_name(leader), machine_busy(), loadavg()
    # wrk stops by itself after -d plus at most --timeout; the margin is for a machine that stalls.
    out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    cpu1, (busy1, all1) = tree_cpu_by_name(leader), machine_busy()
    used = {name: cpu1[name] - cpu0.get(name, 0.0) for name in cpu1}
    line = next(x for x in out.splitlines() if x.startswith("BENCH_JSON "))
    r = json.loads(line.removeprefix("BENCH_JSON "))
    secs = r["duration_us"] / 1e6
    errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["status_errors"] + r["timeouts"]
    return {
        "rps": round(r["requests"] / secs, 1),
        "requests": r["requests"],
        "errors": errors,
        "error_detail": {k: r[k] for k in r if k.endswith("errors") or k == "timeouts"},
        "p50_ms": r["p50_us"] / 1000,
        "p90_ms": r["p90_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
        "api_cpu_ms_per_req": round(1000 * sum(used.values()) / max(r["requests"], 1), 2),
        # The same per process name: the front (nginx), the workers and master (uwsgi), ...
        "api_cpu_ms_per_req_by_name": {n: round(1000 * t / max(r["requests"], 1), 3) for n, t in sorted(used.items())},
        "machine_busy": round((busy1 - busy0) / max(all1 - all0, 1), 3),
        "loadavg": load0,
    }


def sql(query: str) -> list[list[str]]:
    """A query to the local MariaDB as root (socket auth, as scripts/stack.sh does)."""
    argv = ["mariadb", "-N", "-B", "-e", query]
    if os.getuid() != 0:
        argv.insert(0, "sudo")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=15, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def db_status(name: str) -> int:
    return int(sql(f"SHOW GLOBAL STATUS LIKE '{name}'")[0][1])


def db_connections(procs: list[psutil.Process], port: int = 3306) -> int:
    """TCP connections the processes hold to MariaDB now."""
    count = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            conns = p.connections(kind="tcp")
            count += sum(1 for c in conns if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)
    return count


class DbPeak:
    """MariaDB's Max_used_connections over a phase (FLUSH STATUS resets it to the
    connections open now), and the most connections the contender itself held,
    sampled every `every` s (other jobs on the same MariaDB count in the first only)."""

    def __init__(self, procs: list[psutil.Process], sample: bool = True, every: float = 0.05) -> None:
        self.procs, self.sample, self.every = procs, sample, every
        self.own_peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> DbPeak:
        sql("FLUSH STATUS")
        self.before = db_status("Threads_connected")
        self.own_before = db_connections(self.procs)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while self.sample and not self._stop.wait(self.every):
            self.own_peak = max(self.own_peak, db_connections(self.procs))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.max_used = db_status("Max_used_connections")

    def row(self) -> dict:
        return {
            "threads_connected_before": self.before,
            "max_used_connections": self.max_used,
            "own_before": self.own_before,
            "own_peak": max(self.own_peak, self.own_before),
        }
