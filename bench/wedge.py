"""A contender that stopped answering (`Wedged`): the bench's check that it still
answers, and `wedged`, which records why (`ss` of its port, a py-spy dump of each
of its processes) and SIGKILLs every process and process group it has."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

from harness.figures import loadavg
from harness.procs import Proc, session_procs

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


def wedged(name: str, api: Proc, phase: str, what: str) -> dict:
    """Record why a contender stopped answering (`ss` of its port, a py-spy dump of every
    process), then SIGKILL every process and process group it has: TERM may be ignored
    (upstream's was, its MainThread blocked in keystoneauth1's lock). The row for results.json."""
    procs = session_procs(api)
    t0 = time.monotonic()
    port = getattr(api, "port", 0)
    queue = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10)
    dumps = stack_dumps(procs)
    kill_all(procs)
    api.stop(signal.SIGKILL, timeout=5)
    return {
        "contender": name,
        "phase": phase,
        "what": what,
        "listen_queue": queue.stdout.strip(),  # ss: State, Recv-Q (waiting), Send-Q (backlog), address
        "dump_and_kill_s": round(time.monotonic() - t0, 1),
        "dumps": dumps,
        "log_tail": api.log_text()[-3000:],
        "loadavg": loadavg(),
    }
