"""Processes a test or a benchmark starts: each in its own session and
process group, and `Proc.stop` kills the whole group, whatever happened;
`deployment_leftovers` finds what a deployment left, in any session. And
what tests ask of them: `wait_for` a condition (not a fixed sleep), whether
a URL `serves`, uWSGI's stats socket (`uwsgi_stats`, `Api.stats`), and that
a daemon dies with a killed master.

    python -m harness.procs leftovers   every live process outside this one's
                                        session, "PID name" a line (fresh-check.sh)
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from harness import ROOT
from sahara_api_knobs import api_host
from sahara_api_metrics import read_stats

# One line per request, as deploy/uwsgi.ini's log-format writes it.
REQUEST_LOG = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) (\S+)" (\d{3}) \d+B \d+ms worker=\d+ pid=(\d+) req=(\S+)')


def wait_for(
    condition: Callable[[], object], timeout: float, what: str | Callable[[], str] = "", every: float = 0.05
) -> float:
    """Seconds until `condition()` is true, polled every `every` s; fails the
    test after `timeout` s, saying `what` (or what `what()` returns then, e.g.
    a log's tail). The wait on a condition that replaces a fixed sleep."""
    t0 = time.monotonic()
    while not condition():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what() if callable(what) else what or 'condition'}: not within {timeout} s")
        time.sleep(every)
    return time.monotonic() - t0


def serves(url: str, token: str = "", timeout: float = 2) -> bool:
    """GET `url` (with `token`, if any) is answered 200 now: not refused, reset, slow or failing."""
    try:
        return requests.get(url, headers={"X-Auth-Token": token} if token else {}, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def stats_socket(run_dir: str | Path) -> Path:
    """uWSGI's stats socket in a deployment's run dir (deploy/uwsgi.ini's `stats`)."""
    return Path(run_dir, "uwsgi-stats.sock")


def uwsgi_stats(run_dir: str | Path) -> dict:
    """uWSGI's stats socket: workers, their pids, cores and requests in flight."""
    return read_stats(str(stats_socket(run_dir)))


def busy_threads(workers: list[dict]) -> int:
    """Threads of these workers (from uwsgi_stats) inside a request now: their cores' in_request."""
    return sum(c["in_request"] for w in workers for c in w.get("cores", []))


def assert_dies_with_killed_master(proc: psutil.Process, master: int, what: str, timeout: float = 10) -> None:
    """SIGKILL `master`, which gives it no chance to stop `proc`: the kernel
    must (PR_SET_PDEATHSIG, setpriv --pdeathsig) within `timeout` s."""
    os.kill(master, signal.SIGKILL)
    try:
        proc.wait(timeout=timeout)
    except psutil.TimeoutExpired:
        raise AssertionError(f"{what} outlived its master") from None
    except psutil.NoSuchProcess:
        pass


@functools.cache
def _port_block() -> range:
    """This process's ports: below the kernel's ephemeral range, so no client's
    source port takes one between pick and bind, and a block of its own per
    pytest-xdist worker, so no other worker picks the same."""
    ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    size = (ephemeral - 10000) // workers
    return range(10000 + worker * size, 10000 + (worker + 1) * size)


_tried = itertools.count()  # ports of the block tried so far, free or not


def free_port() -> int:
    """A port free now that no earlier call of this process returned: asking
    the kernel for port 0 twice can give the same port twice (seen: the API's
    and the metrics port of one deployment were equal)."""
    block = _port_block()
    for _ in block:
        port = block[next(_tried) % len(block)]
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            return port
    raise RuntimeError(f"no free port in {block}")


def port_of(value: object) -> int:
    """A port knob's value as a number; 0 for what a bad-value test gives ("http")."""
    return int(value) if str(value).isdigit() else 0


def uwsgi_master(pid: int, timeout: float = 10) -> int:
    """The uWSGI master of a deployment whose launcher was `pid`: that process,
    or with the nginx front the only child of deploy/relay.sh, which the
    launcher execs in its place (docs/signals.md)."""
    deadline = time.monotonic() + timeout
    while True:
        root = psutil.Process(pid)
        if "relay.sh" not in " ".join(root.cmdline()):
            return pid
        # The relay's child is env, then setpriv, for a moment before it is uWSGI.
        children = [c for c in root.children() if c.name() == "uwsgi"]
        if children:
            return children[0].pid
        if time.monotonic() > deadline:
            raise RuntimeError(f"no uWSGI master under the relay {pid}")
        time.sleep(0.01)


def deployment_leftovers(
    sessions: set[int] | None, run_dir: str = "", ports: set[int] = frozenset()
) -> list[psutil.Process]:
    """Live processes of a deployment, whatever their session: those of
    `sessions`, and, since uWSGI's daemons (nginx, the metrics exporter) call
    setsid, every session with a process that names `run_dir` in its command
    line (nginx's master, the exporter) or listens on one of `ports` (an
    nginx worker whose master is gone). Never the caller's own session:
    deployments start in sessions of their own, and a socket the test itself
    holds on one of `ports` (a port-taken test) is not a leftover.
    sessions=None: every session, where nothing else runs (a clean container)."""
    every, sessions, own = sessions is None, set(sessions or ()), os.getsid(0)
    procs = []
    for p in psutil.process_iter():
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            sid = os.getsid(p.pid)
            procs.append((p, sid))
            if sid == own:
                continue
            if every:
                sessions.add(sid)
            elif run_dir and any(run_dir + "/" in arg for arg in p.cmdline()):
                sessions.add(sid)
            elif ports and any(c.laddr.port in ports for c in p.connections("inet") if c.status == psutil.CONN_LISTEN):
                sessions.add(sid)
        except (OSError, psutil.Error):
            pass
    return [p for p, sid in procs if sid in sessions and p.is_running()]


def session_pids(sid: int) -> set[int]:
    """Live processes of session `sid` (another session than the caller's)."""
    return {p.pid for p in deployment_leftovers({sid})}


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class Proc:
    """A process group started by a test; `stop` always leaves nothing behind."""

    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def send(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def leftovers(self) -> list[psutil.Process]:
        """Processes still alive in this process's session (it is their leader)."""
        return deployment_leftovers({self.pid})

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Signal the leader, then SIGKILL the whole group if it lingers."""
        rc = self.popen.poll()
        if rc is None:
            try:
                self.send(sig)
                rc = self.popen.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                rc = None
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if rc is None:
            rc = self.popen.wait(timeout=10)
        return rc


@dataclass
class Api(Proc):
    port: int = 0
    environ: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{api_host(self.environ.get('SAHARA_API_HOST') or '127.0.0.1')[1]}:{self.port}"

    def leftovers(self) -> list[psutil.Process]:
        """Every process this API started that is still alive, whatever its session."""
        run_dir = self.environ.get("SAHARA_RUN_DIR", "")
        ports = {self.port, port_of(self.environ.get("SAHARA_METRICS_PORT"))} - {0}  # a bad value names no port
        return deployment_leftovers({self.pid}, run_dir.rstrip("/"), ports)

    @property
    def master(self) -> int:
        """uWSGI's master (pid is the launcher's: with the nginx front, deploy/relay.sh)."""
        return uwsgi_master(self.pid)

    def worker_pids(self) -> set[int]:
        """The master's children that run its program: not the metrics exporter or
        nginx it also runs, nor a fork of the master about to exec one of them
        (uWSGI's daemon children call setsid first, then may wait out a respawn
        throttle before their exec). Where uWSGI's stats socket answers, only the
        pids it names as workers: a fork the master or its app makes for a moment
        (seen once as a fifth "worker" of four) has the master's name and session."""
        master = psutil.Process(self.master)
        pids = set()
        for child in master.children():
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                if child.name() == master.name() and os.getsid(child.pid) == os.getsid(master.pid):
                    pids.add(child.pid)
        run_dir = self.environ.get("SAHARA_RUN_DIR")
        if run_dir and pids and stats_socket(run_dir).exists():
            with contextlib.suppress(OSError, ValueError):  # the master on its way out
                pids &= {w["pid"] for w in self.stats()["workers"]}
        return pids

    def stats(self) -> dict:
        return uwsgi_stats(self.environ["SAHARA_RUN_DIR"])

    def served_by(self) -> list[tuple[int, str, str]]:
        """(worker pid, method, path) of every request in uWSGI's request log."""
        return [(int(m[4]), m[1], m[2]) for m in REQUEST_LOG.finditer(self.log_text())]

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_text()[-3000:]}")
            # uWSGI listens before its workers are up: on a busy machine the
            # first probe waits in the backlog longer than its timeout.
            if serves(f"{self.url}/healthcheck"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready in {timeout} s:\n{self.log_text()[-3000:]}")


def start(name: str, argv: list[str], log: Path, env: dict[str, str], cls: type[Proc] = Proc, **extra) -> Proc:
    out = log.open("wb")
    popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=ROOT)
    out.close()
    return cls(name=name, popen=popen, log=log, **extra)


def uwsgi_master_in(procs: Sequence[psutil.Process]) -> psutil.Process:
    """The one uWSGI master among a deployment's processes (a container's, a
    pod's): the uwsgi whose parent is not uwsgi (the relay, tini, supervisord)."""
    masters = [p for p in procs if p.name() == "uwsgi" and p.parent().name() != "uwsgi"]
    assert len(masters) == 1, [p.cmdline() for p in procs]
    return masters[0]


def tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (uWSGI's master: workers, nginx, exporter)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def session_procs(leader: Proc) -> list[psutil.Process]:
    """Every process of a deployment: its session, and the leader's descendants that
    left it (uWSGI runs nginx as a daemon, which calls setsid)."""
    procs = {p.pid: p for p in leader.leftovers()}
    with contextlib.suppress(psutil.Error):
        for p in tree(leader.pid)[1:]:
            procs.setdefault(p.pid, p)
    return list(procs.values())


def nginxes_on(port: int) -> list[psutil.Process]:
    """nginx processes, masters and workers, whatever their session, listening on `port`."""
    found = []
    for p in psutil.process_iter(["name"]):
        if p.info["name"] != "nginx":
            continue
        with contextlib.suppress(psutil.NoSuchProcess):
            if any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in p.connections("tcp")):
                found.append(p)
    return found


def signal_uwsgi_master(master: int, sig: signal.Signals, url: str, port: int, log: Callable[[], str]) -> float:
    """`sig` to uWSGI's master itself (not the relay), as an operator who reads
    uWSGI's docs sends it; then the master reaped and `url` serving again
    within 30 s (a 200 comes from a new master only: an nginx the old one left
    answers 502), and no nginx that listened on `port` before the signal still
    does (issue 30's outage). Returns the seconds until it serves again; an
    nginx the old master left is killed, so that a failure leaves nothing.
    30 s, not issue 30's 10: that is a quiet machine's figure (signals.md:
    2.9-4.6 s); beside the rest of make test on 2 cores the new master's app
    load alone took 7 s, and a KILL's restart in the image went past 10."""
    old = {p.pid for p in nginxes_on(port)}
    try:
        os.kill(master, sig)
        wait_for(lambda: not psutil.pid_exists(master), 10, f"uWSGI's master {master} reaped")
        took = wait_for(lambda: serves(f"{url}/healthcheck"), 30, lambda: log()[-3000:], every=0.1)
    finally:
        left = [p for p in nginxes_on(port) if p.pid in old]
        for p in left:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
    assert not left, f"nginx {[p.pid for p in left]} of the old master still held the port"
    return took


def main() -> None:
    if sys.argv[1:] != ["leftovers"]:
        sys.exit("usage: python -m harness.procs leftovers")
    for p in deployment_leftovers(None):
        with contextlib.suppress(psutil.Error):
            print(p.pid, p.name())


if __name__ == "__main__":
    main()
