"""A contender that stops answering does not hang `make bench` (issue 22): the
burst gives up once nothing has been answered for its stall time, the bench
records the contender as wedged with a py-spy dump of each of its processes,
and SIGKILLs them all, TERM-ignoring leader and a child in a session of its
own included, well within two minutes. No stack needed: wedged_server.py
blocks its only thread in a lock, as upstream's MainThread did."""

from __future__ import annotations

import os
import signal
import sys
import time

import psutil
import pytest

from bench.wedge import excerpt, wedged
from harness.procs import Api, free_port, session_procs, start
from harness.workload import slow_mix

STALL = 5.0


@pytest.mark.timeout(120)
def test_wedged_contender_is_dumped_killed_and_skipped(tmp_path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "harness.wedged_server", str(port)]
    server = start("wedged", argv, tmp_path / "wedged.log", dict(os.environ), cls=Api, port=port)
    assert isinstance(server, Api)
    try:
        deadline = time.monotonic() + 30
        while "wedged server ready" not in server.log_text():
            assert time.monotonic() < deadline and server.popen.poll() is None, server.log_text()
            time.sleep(0.1)
        procs = session_procs(server)
        assert len(procs) == 2, procs  # the server and its child in another session

        t0 = time.monotonic()
        mix = slow_mix(server.url, "no-token", "no-cluster", 4, fast_interval=0.2, stall=STALL)
        assert mix.stalled and not mix.slow, mix
        assert time.monotonic() - t0 < STALL + 10

        row = wedged("wedged-1", server, "C1 N=4", f"no answer for {STALL:g} s")
        assert "authenticate (harness/wedged_server.py" in row["dumps"][str(server.pid)], row["dumps"]
        assert "Thread " in excerpt(row["dumps"][str(server.pid)])
        assert ":" + str(port) in row["listen_queue"]
        for p in procs:  # TERM ignored: SIGKILLed, its own-session child too
            assert not p.is_running() or p.status() == psutil.STATUS_ZOMBIE, p
        assert time.monotonic() - t0 < 60
    finally:
        server.stop(signal.SIGKILL, timeout=5)
