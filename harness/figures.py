"""Figures every report uses, defined once: the nearest-rank percentile, the
median, the PSS and the CPU time of a set of processes (`CpuMeter`: of a
deployment's tree between two moments), how busy the machine is, and a
Markdown table."""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from harness.procs import Proc, session_procs


def percentile(values: Iterable[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 20 samples is the largest); nan for none."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def pss_mib(procs: Iterable[psutil.Process]) -> float:
    """Total proportional set size of the processes, from /proc/PID/smaps_rollup."""
    kib = 0
    for p in procs:
        try:
            for line in Path(f"/proc/{p.pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    kib += int(line.split()[1])
        except OSError:
            pass
    return round(kib / 1024, 1)


def cpu_seconds(procs: Iterable[psutil.Process]) -> float:
    """CPU used so far by the processes, user + system, with that of the children
    they reaped: a worker uWSGI recycles (max-requests) or respawns takes its CPU
    with it, but the parent that reaps it adds it to its own children times."""
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def tree_cpu_seconds(leader: Proc) -> float:
    """CPU used so far by a deployment's processes (session_procs), those that exited included."""
    return cpu_seconds(session_procs(leader))


def tree_cpu_by_name(leader: Proc) -> dict[str, float]:
    """tree_cpu_seconds per process name (nginx, uwsgi, python...): where a
    deployment's CPU goes between its front, its workers and the rest."""
    by: dict[str, float] = {}
    for p in session_procs(leader):
        with contextlib.suppress(psutil.Error):
            by[p.name()] = by.get(p.name(), 0.0) + cpu_seconds([p])
    return by


def own_cpu_seconds() -> float:
    """CPU of this process (a load generator's threads), user + system."""
    t = os.times()
    return t.user + t.system


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def loadavg() -> float:
    """The 1-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass
class CpuMeter:
    """CPU seconds of a deployment's tree between start and stop (tree_cpu_seconds: workers
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


def table(head: list[str], rows: Iterable[Iterable[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
