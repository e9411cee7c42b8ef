"""scripts/stack.sh stops only what a run started, and only once no other run
uses it (issue 30): two runs that overlap keep their services."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import ROOT
from harness.procs import free_port

STACK = ROOT / "scripts" / "stack.sh"


def port_open(port: int) -> bool:
    return subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"], capture_output=True).returncode == 0


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen]]:
    """Two long-lived processes standing for two runs (a make run, a test run)."""
    procs = [subprocess.Popen(["sleep", "600"]) for _ in range(2)]
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def test_overlapping_runs_keep_their_services(stack, tmp_path: Path, holders: list[subprocess.Popen]) -> None:
    port = free_port()  # a memcached of these two runs only: the shared services are held, never stopped here

    def run(name: str, holder: subprocess.Popen, action: str) -> str:
        env = {
            **os.environ,
            "STACK_STARTED": str(tmp_path / name / "started"),
            "STACK_HOLDER": str(holder.pid),
            "STACK_MEMCACHED_PORT": str(port),
        }
        (tmp_path / name).mkdir(exist_ok=True)
        out = subprocess.run([str(STACK), action], env=env, capture_output=True, text=True, timeout=300, check=True)
        return out.stdout

    a, b = holders
    assert "memcached: starting" in run("a", a, "up")
    assert "memcached: already running, reusing it" in run("b", b, "up")
    said = run("a", a, "down")  # a started memcached, b still uses it
    print(f"\n  a's down while b runs: {said.strip()}")
    assert port_open(port), "b lost the memcached a started"
    assert f"leaving memcached@{port} running: still used by pid {b.pid}" in said
    assert "stopping" not in said, "a stopped a service b uses"
    said = run("b", b, "down")  # the last to leave stops what a left to it, and nothing it merely reused
    print(f"  b's down: {said.strip()}")
    assert not port_open(port) and said.strip().splitlines() == [f"[stack] stopping memcached@{port}"]
