"""What `make hostile` (bench/hostile_run.py) and bench/front_candidates.py
measure beside the hostile clients of harness/hostile.py: the CPU seconds
of a process tree."""

from __future__ import annotations

import contextlib

import psutil


def tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (uWSGI's master: workers, nginx, exporter)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


class Sampler:
    """CPU seconds of a set of processes between start and stop."""

    def __init__(self, procs: list[psutil.Process]) -> None:
        self.procs = procs

    def cpu(self) -> float:
        total = 0.0
        for p in self.procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total
