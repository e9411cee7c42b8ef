"""Figures every report uses, defined once: the nearest-rank percentile, the
median, the PSS of a set of processes, and a Markdown table."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path

import psutil


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


def table(head: list[str], rows: Iterable[Iterable[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
