"""Measurements taken from outside the servers: wrk runs, CPU and PSS from
/proc, cold start, respawn after kill -9 of a worker, MariaDB's connection
counters, and what to do with a server that stopped answering."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from harness.load import Load
from harness.procs import Api, Proc, serves, uwsgi_master, wait_for

LUA = Path(__file__).with_name("report.lua")
# A task blocked in one of these waits for a connection (or its accept lock).
ACCEPT_WAITS = {"43", "288", "232", "281", "7", "271", "23", "270"}  # accept, accept4, epoll_wait, epoll_pwait, poll...


def session_procs(leader: Proc) -> list[psutil.Process]:
    """Every process of a contender: its session, and the leader's descendants that
    left it (uWSGI runs nginx as a daemon, which calls setsid)."""
    procs = {p.pid: p for p in leader.leftovers()}
    with contextlib.suppress(psutil.Error):
        for p in psutil.Process(leader.pid).children(recursive=True):
            procs.setdefault(p.pid, p)
    return list(procs.values())


def tree_cpu_seconds(leader: Proc) -> float:
    """CPU used so far by a contender's processes, those that exited included: a worker
    uWSGI recycles (max-requests) or respawns takes its CPU with it, but the parent that
    reaps it adds it to its own children times."""
    total = 0.0
    for p in session_procs(leader):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def own_cpu_seconds() -> float:
    """CPU of this process (the load generator's threads), user + system."""
    t = os.times()
    return t.user + t.system


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def wrk(url: str, token: str, connections: int, seconds: float, close: bool, leader: Proc) -> dict:
    """One wrk run; adds the API's CPU per request and how busy the machine was."""
    threads = min(2, connections)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(LUA)]
    argv += ["-H", f"X-Auth-Token: {token}"]
    if close:
        argv += ["-H", "Connection: close"]
    cpu0, (busy0, all0), load0 = tree_cpu_seconds(leader), machine_busy(), loadavg()
    # wrk stops by itself after -d plus at most --timeout; the margin is for a machine that stalls.
    out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    cpu1, (busy1, all1) = tree_cpu_seconds(leader), machine_busy()
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
        "api_cpu_ms_per_req": round(1000 * (cpu1 - cpu0) / max(r["requests"], 1), 2),
        "machine_busy": round((busy1 - busy0) / max(all1 - all0, 1), 3),
        "loadavg": load0,
    }


def listening(port: int, t0: float, proc: Proc, limit: float = 90) -> float:
    """Seconds from t0 until something accepts TCP connections on the port."""
    while time.monotonic() - t0 < limit:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return time.monotonic() - t0
        except OSError:
            time.sleep(0.01)
    raise Wedged(f"nothing listens on port {port} {limit:g} s after the start")


def first_200(url: str, token: str, t0: float, proc: Proc, limit: float = 90) -> float:
    """Seconds from t0 until GET url answers 200 (polled every 10 ms)."""
    while time.monotonic() - t0 < limit:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_text()[-3000:]}")
        if serves(url, token):
            return time.monotonic() - t0
        time.sleep(0.01)
    raise Wedged(f"no 200 from {url} within {limit:g} s of the start")


def wait_children(api: Api, count: int, limit: float = 30) -> None:
    """Until `api` runs `count` workers (not its front or exporter)."""
    wait_for(lambda: len(api.worker_pids()) >= count, limit, f"{api.name}: {count} workers up")


def _waiting_for_connections(pid: int) -> bool:
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


def kill_worker(leader: Proc, url: str, token: str, rate: float = 20, settle: float = 1.0) -> Respawn:
    """kill -9 one worker under `rate` req/s; time until a new one waits for connections."""
    parent = psutil.Process(uwsgi_master(leader.pid))
    before = {c.pid for c in parent.children()}
    # A worker runs the leader's program; anything else it runs is not one.
    victim = max(c.pid for c in parent.children() if c.name() == parent.name())
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
            if new is not None and _waiting_for_connections(new):
                time.sleep(0.005)  # still waiting 5 ms later: not a pause in its start-up
                if _waiting_for_connections(new):
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


@dataclass
class CpuMeter:
    """CPU seconds of a process tree between start and stop (tree_cpu_seconds: workers
    born or gone in between included), and how busy the whole machine was meanwhile."""

    leader: Proc
    before: float = 0.0

    def start(self) -> CpuMeter:
        self.before, self.busy0 = tree_cpu_seconds(self.leader), machine_busy()
        return self

    def stop(self) -> tuple[float, float]:
        """(CPU seconds of the tree, share of the whole machine busy meanwhile)."""
        used = tree_cpu_seconds(self.leader) - self.before
        (b0, a0), (b1, a1) = self.busy0, machine_busy()
        return used, (b1 - b0) / max(a1 - a0, 1)


PY_SPY = Path(sys.executable).with_name("py-spy")


class Wedged(Exception):
    """A contender stopped answering: `what` says where the bench saw it."""

    def __init__(self, what: str, contender: str = "") -> None:
        super().__init__(what)
        self.what, self.contender = what, contender


def answers(url: str, token: str, tries: int = 2, timeout: float = 10) -> bool:
    """Does the server still answer an authenticated GET (any status)?"""
    for _ in range(tries):
        try:
            requests.get(url, headers={"X-Auth-Token": token}, timeout=timeout)
            return True
        except requests.RequestException:
            time.sleep(1)
    return False


def stack_dumps(procs: list[psutil.Process], timeout: float = 20) -> dict[str, str]:
    """`py-spy dump` of each process (pid -> text): where every Python thread is.
    Not Python (nginx) or gone: py-spy's own error, with the process's state."""
    out = {}
    for p in procs:
        try:
            head = f"{p.name()} {p.status()} (wchan {Path(f'/proc/{p.pid}/wchan').read_text() or '-'})\n"
            # A stopped process cannot be suspended: then read it as it is.
            for extra in ([], ["--nonblocking"]):
                argv = [str(PY_SPY), "dump", "--pid", str(p.pid), *extra]
                run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
                if run.returncode == 0:
                    break
            error = (run.stderr or run.stdout).split("Stack backtrace:")[0].strip()
            text = run.stdout if run.returncode == 0 else f"py-spy: {error}"
        except (psutil.Error, OSError) as e:
            head, text = "", f"{e.__class__.__name__}: {e}"
        except subprocess.TimeoutExpired:
            text = f"py-spy: no dump within {timeout:g} s"
        out[str(p.pid)] = head + text
    return out


def kill_all(procs: list[psutil.Process]) -> None:
    """SIGKILL every process and its process group: a wedged server may ignore TERM."""
    for p in procs:
        with contextlib.suppress(psutil.Error, OSError):
            if p.is_running():  # the same process (psutil checks its start time), not a reused pid
                os.killpg(os.getpgid(p.pid), signal.SIGKILL)
                p.kill()
    psutil.wait_procs(procs, timeout=10)


def excerpt(dump: str, lines: int = 6) -> str:
    """A py-spy dump, short: the first Python thread's innermost frames, then how many threads
    wait in each innermost frame (a pool blocked on one lock shows as one line)."""
    threads: list[list[str]] = []
    head: list[str] = []
    for line in dump.splitlines():
        if line.startswith("Thread "):
            threads.append([line])
        elif threads and line.strip():
            threads[-1].append(line.strip())
        elif not threads and line.strip():
            head.append(line)
    if not threads:
        return "\n".join(head[:lines])
    first = next((t for t in threads if len(t) > 1), threads[0])  # the first with Python frames
    out = [first[0], *("    " + x for x in first[1 : lines + 1])]
    if len(threads) > 1:
        tops: dict[str, int] = {}
        for t in threads:
            top = t[1] if len(t) > 1 else "(no Python frame)"
            tops[top] = tops.get(top, 0) + 1
        ranked = sorted(tops.items(), key=lambda kv: -kv[1])[:5]
        out.append(f"{len(threads)} threads, innermost frame: " + "; ".join(f"{n} x {f}" for f, n in ranked))
    return "\n".join(out)


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
    sampled every 50 ms (other jobs on the same MariaDB count in the first only)."""

    def __init__(self, procs: list[psutil.Process], sample: bool = True) -> None:
        self.procs, self.sample = procs, sample
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
        while self.sample and not self._stop.wait(0.05):
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
