"""`make run` stopped the four ways it is stopped in practice (docs/signals.md,
"Stopping make run"): Ctrl-C, TERM to make only, TERM to make's whole process
group (timeout, a closing terminal, a service manager), SIGKILL of
supervisord. Each time under light load with an upload in flight (4 MiB at
1 MiB/s, the signal 1.5 s into it: the client gets Sahara's answer): no
request started before the signal fails, the API and the engine are gone
before the services run.sh started are stopped, and nothing is left.

The shared stack is running already and is reused, so run.sh would stop
nothing; to see the order, each `make run` starts a memcached of its own
(STACK_MEMCACHED_PORT, a free port) that scripts/stack.sh lists in the
test's own STACK_STARTED file and stops at the end, as it stops the services
of a first `make run`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness import ROOT
from harness.deploy import MakeRun, kill_make_run, start_make_run
from harness.load import UPLOAD_SIGNAL_AT, Load, trickle_put
from harness.procs import alive, deployment_leftovers, session_pids, uwsgi_master, wait_for
from harness.troubleshooting import assert_documented

# A request started this long before the signal was accepted (test_supervision.py).
ACCEPTED = 0.05
# Generous: the engine's own graceful stop takes ~5-8 s on a busy machine.
STOP_BOUND = 60

CASES = {
    "ctrl-c": "SIGINT to make's process group, as the terminal sends it",
    "term-make": "SIGTERM to the make process only",
    "term-group": "SIGTERM to make's whole process group (timeout, terminal closed, service manager)",
    "kill-supervisord": "SIGKILL of supervisord",
}


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def make_run(sahara_conf: Path, tmp_path: Path) -> Iterator[MakeRun]:
    run = start_make_run(tmp_path, sahara_conf)
    yield run
    kill_make_run(run)


def send(run: MakeRun, case: str) -> None:
    make = run.popen.pid
    if case == "ctrl-c":
        os.killpg(make, signal.SIGINT)
    elif case == "term-make":
        os.kill(make, signal.SIGTERM)
    elif case == "term-group":
        os.killpg(make, signal.SIGTERM)
    else:
        os.kill(run.supervisord, signal.SIGKILL)


@pytest.mark.parametrize("case", CASES)
def test_make_run_stops_api_and_engine_first_and_leaves_nothing(make_run: MakeRun, token: str, case: str) -> None:
    run = make_run
    run.wait_ready()
    deployment = run.deployment()
    memcached = run.memcached
    sid = run.supervisord
    make_tree = {c.pid for c in psutil.Process(run.popen.pid).children(recursive=True)}
    run.owned |= deployment | make_tree | {run.popen.pid, memcached}
    slow: dict[str, float | int | str] = {}
    with Load(run.url, token, clients=2) as load:
        load.warm(successes=10)
        writer = threading.Thread(target=trickle_put, args=(run.url, token, slow))
        writer.start()
        time.sleep(UPLOAD_SIGNAL_AT)  # the head is in, the body is coming
        t_signal = time.monotonic()
        send(run, case)
        # Poll who is alive until make is gone: the order is seen, not inferred from logs.
        deployment_gone = memcached_gone = None
        while time.monotonic() - t_signal < STOP_BOUND + 30:
            now = time.monotonic()
            if deployment_gone is None and not any(alive(p) for p in deployment):
                deployment_gone = now - t_signal
            if memcached_gone is None and not alive(memcached):
                memcached_gone = now - t_signal
            if run.popen.poll() is not None and memcached_gone is not None:
                break
            time.sleep(0.02)
        make_exit = time.monotonic() - t_signal
        writer.join(timeout=60)
    failed = load.failed(started_before=t_signal - ACCEPTED)
    left = {p for p in run.owned if alive(p)} | session_pids(sid)
    left |= {p.pid for p in deployment_leftovers({sid}, str(run.run_dir), {run.port, run.metrics_port})}
    log = run.log_text()
    print(
        f"\n[make run, {CASES[case]}] API+engine gone after {deployment_gone} s, run.sh's memcached stopped"
        f" after {memcached_gone} s, make exited after {make_exit:.2f} s; in-flight request:"
        f" {slow.get('status')} at +{float(slow.get('end', 0)) - t_signal:.2f} s; load: {load.summary()};"
        f" failed before the signal: {len(failed)}; processes left: {sorted(left)}"
    )
    assert run.popen.poll() is not None, f"make run still running after {make_exit:.0f} s"
    assert deployment_gone is not None and deployment_gone < STOP_BOUND, "API and engine did not stop in time"
    assert memcached_gone is not None and memcached_gone >= deployment_gone, "a service stopped before the API"
    assert "[stack] stopping memcached" in log
    assert failed == []
    assert left == set()
    assert port_free(run.port) and port_free(run.metrics_port)
    assert "killing what did not stop" not in log, "everything stopped by itself"
    # Sahara's own answer (404: no such cluster), after the signal: the front finished the upload.
    assert slow.get("status") == 404 and float(slow["end"]) > t_signal, f"upload in flight: {slow}"


def stop_leftovers(run_dir: Path) -> subprocess.CompletedProcess:
    """scripts/run.sh's first step, on its own."""
    script = f"TAG='[run]'; source {ROOT / 'deploy' / 'all-in-one.sh'}; stop_leftovers"
    env = {**os.environ, "SAHARA_RUN_DIR": str(run_dir), "SAHARA_API_STOP_TIMEOUT": "100"}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)


def test_next_make_run_stops_what_a_dead_one_left(tmp_path: Path) -> None:
    """A deployment whose supervisord died (its pidfile names the session) is
    stopped with one line; a live one is left alone with one line."""
    pidfile = tmp_path / "supervisord.pid"
    # Two program heads (group leaders, as supervisord makes them) whose session leader is gone.
    leftover = "set -m; sleep 300 & sleep 300 & echo $$ > " + str(pidfile)
    subprocess.run(["setsid", "bash", "-c", leftover], check=True, timeout=30)
    sid = int(pidfile.read_text())
    left = session_pids(sid)
    assert len(left) == 2
    try:
        t0 = time.monotonic()
        out = stop_leftovers(tmp_path)
        took = time.monotonic() - t0
        print(f"\n[leftover] {out.stdout.strip()} (done in {took:.1f} s)")
        assert out.returncode == 0, out.stderr
        assert session_pids(sid) == set() and not pidfile.exists()
        line = out.stdout.strip()
        assert line.startswith("[run] stopping 2 processes an earlier run left") and "\n" not in line
        assert_documented(line)
    finally:
        for pid in left:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

    # A supervisord that is still running (by its name), then a pid reused by something else.
    live = subprocess.Popen(["setsid", "bash", "-c", "exec -a supervisord sleep 300"])
    try:
        pidfile.write_text(f"{live.pid}\n")
        time.sleep(0.2)
        out = stop_leftovers(tmp_path)
        print(f"[leftover] {out.stderr.strip()}")
        assert out.returncode == 1 and alive(live.pid)
        assert_documented(out.stderr.strip())
        other = subprocess.Popen(["setsid", "sleep", "300"])
        try:
            pidfile.write_text(f"{other.pid}\n")
            time.sleep(0.2)
            out = stop_leftovers(tmp_path)
            assert out.returncode == 0 and out.stdout == out.stderr == "" and alive(other.pid)
            assert not pidfile.exists()
        finally:
            other.kill()
            other.wait()
    finally:
        live.kill()
        live.wait()


def test_term_while_the_master_loads_the_app_stops_it(launch) -> None:
    """uWSGI used to drop a TERM that came before its master-start hooks (the
    app loading, 1-5 s) and then serve for ever; nothing is served yet then,
    so it now exits at once (uwsgi.ini's hook-asap)."""
    api = launch("api", wait=False, SAHARA_API_WORKERS=2)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{uwsgi_master(api.pid)}/comm").read_text().strip() != "uwsgi":  # the launcher exec'd it
        assert time.monotonic() < deadline and api.popen.poll() is None, api.log_text()[-2000:]
        time.sleep(0.01)
    time.sleep(0.2)
    assert "spawned uWSGI worker" not in api.log_text(), "too late: the app loaded already"
    t0 = time.monotonic()
    api.send(signal.SIGTERM)
    rc = api.wait(timeout=30)
    print(f"\n[TERM while loading] exit {rc} after {time.monotonic() - t0:.2f} s")
    assert rc == 15 and api.leftovers() == [] and port_free(api.port)


def test_term_as_the_relay_starts_uwsgi_stops_it(launch) -> None:
    """deploy/relay.sh sets its traps before it starts uWSGI: a TERM just after
    the start used to kill the relay, and uWSGI with it (its parent-death KILL).
    (A TERM before bash has read the traps ends the relay alone: nothing started.)"""
    api = launch("api", wait=False, SAHARA_API_WORKERS=2)
    deadline = time.monotonic() + 60
    while not ("relay.sh" in " ".join(psutil.Process(api.pid).cmdline()) and psutil.Process(api.pid).children()):
        assert time.monotonic() < deadline and api.popen.poll() is None, api.log_text()[-2000:]
        time.sleep(0.001)
    t0 = time.monotonic()
    api.send(signal.SIGTERM)
    rc = api.wait(timeout=30)
    print(f"\n[TERM as the relay starts uWSGI] exit {rc} after {time.monotonic() - t0:.2f} s")
    # The relay passes on its child's status: 15 from uWSGI's hook-asap, 143 (128 + TERM)
    # when the child was still env or setpriv, 0 when uWSGI stopped (on the TERM, or on
    # front.sh run's INT if it lost the TERM); -15 would be the relay itself killed.
    assert rc in (0, 15, 143)
    wait_for(lambda: api.leftovers() == [], 5, lambda: f"left: {api.leftovers()}")
    assert port_free(api.port)
