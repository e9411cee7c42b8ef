"""The default HTTP front (nginx, run by uWSGI's master; docs/security.md)
against what hostile or careless clients do, with the probes of `make
hostile` (harness/hostile.py) shortened; slowloris and oversized heads are in
test_security.py."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import psutil
import requests

from harness import hostile
from harness.procs import Api, assert_dies_with_killed_master, serves, wait_for

LIMIT = 10 * 2**20  # SAHARA_API_MAX_BODY_MB's default


def front_of(api: Api) -> psutil.Process:
    (nginx,) = (p for p in psutil.Process(api.master).children() if p.name() == "nginx")
    return nginx


def test_reload_under_load_keeps_the_front_and_loses_nothing(
    launch, sahara_conf: Path, tmp_path: Path, token: str
) -> None:
    """HUP (to the relay, which passes it on) re-execs uWSGI's master, which
    loads the app again, and replaces the workers; nginx, a pidfile daemon,
    keeps running, so no client connection is cut. The second HUP picks up
    a changed sahara.conf (no plugin enabled: /v2/plugins empties)."""
    extra = tmp_path / "plugins.conf"
    extra.write_text("[DEFAULT]\nplugins = fake\n")
    api = launch(SAHARA_API_WORKERS=2, SAHARA_CONFIG_FILES=f"{sahara_conf}:{extra}")
    nginx, workers = front_of(api), api.worker_pids()
    headers = {"X-Auth-Token": token}
    assert requests.get(f"{api.url}/v2/plugins", headers=headers, timeout=30).json()["plugins"]
    for _ in range(2):
        d = hostile.hup(api.url, token, api.pid, seconds=6)
        print(f"\n  HUP under load: {d.requests} requests, {d.failed} failed {d.errors}")
        assert d.requests > 20 and d.failed == 0
        extra.write_text("[DEFAULT]\nplugins =\n")
    assert front_of(api).pid == nginx.pid, "the same nginx"
    assert not api.worker_pids() & workers, "new workers"
    assert requests.get(f"{api.url}/v2/plugins", headers=headers, timeout=30).json()["plugins"] == []


def test_killed_worker_cuts_only_its_own_requests(launch, token: str) -> None:
    api = launch(SAHARA_API_WORKERS=2)
    d = hostile.kill_worker(api.url, token, api.master, api.environ["SAHARA_RUN_DIR"])
    print(f"\n  kill -9 of a worker serving {d.in_flight}: {d.requests} requests, {d.failed} failed {d.errors}")
    # +1: uWSGI's stats are read just before the kill; on a loaded machine a
    # thread of the victim can take one more request in between.
    assert d.failed <= d.in_flight + 1


def test_slow_bodies_and_idle_connections_hold_no_worker(launch, token: str) -> None:
    """Bodies sent at 1 B/s by unauthenticated clients wait in nginx, not in a
    worker thread; 500 idle keep-alive connections do not stop other clients;
    a chunked body over the limit gets 413 like a declared one."""
    api = launch(SAHARA_API_WORKERS=2)
    slow = hostile.slow_bodies(api.port, api.environ["SAHARA_RUN_DIR"], clients=40, seconds=5)
    print(f"\n  40 slow bodies: at most {slow['most_busy_threads']} busy threads; fast GETs {slow['fast']}")
    assert slow["most_busy_threads"] == 0 and slow["fast_failed"] == 0
    idle = hostile.idle_keepalive(api.port, api.url, token, connections=500, seconds=3)
    print(f"  500 idle keep-alive connections: {idle}")
    assert idle["answered"] == 500
    # The 500 requests arrive at once: with each one's worker connection that
    # is ~1000 of worker_connections 1024, and nginx then closes a few idle
    # keep-alive connections to make room, by design (security.md).
    assert idle["held_open_by_server"] >= 450
    assert idle["fast_answered"] > 5 and idle["fast_failed"] == 0
    assert hostile.bodies(api.port, LIMIT, token) == {
        "declared body over the limit": "413",
        "real body over the limit (chunked)": "413",
    }


def test_front_dies_with_a_killed_master(launch) -> None:
    api = launch(SAHARA_API_WORKERS=1)
    nginx = front_of(api)
    assert_dies_with_killed_master(nginx, api.pid, "nginx (setpriv --pdeathsig)")
    # ... so a restart finds the port free, and the stale pidfile in the same run dir is no obstacle.
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", api.port))
    again = launch(SAHARA_API_WORKERS=1)
    assert requests.get(f"{again.url}/healthcheck", timeout=30).status_code == 200


def test_killed_front_is_restarted(launch) -> None:
    """uWSGI's master checks the pidfile every second and starts nginx again;
    the killed master's worker, which would keep the port, is ended first."""
    api = launch(SAHARA_API_WORKERS=1)
    nginx = front_of(api)
    orphans = nginx.children()
    # Past uWSGI's respawn throttle (a daemon that dies within 3 s of its start waits):
    # nginx has run 4 s (uWSGI forked it a little earlier), however long the launch took.
    time.sleep(max(0.0, nginx.create_time() + 4 - time.time()))
    nginx.kill()

    def new_front_serves() -> bool:
        fronts = [p for p in psutil.Process(api.master).children() if p.name() == "nginx" and p.pid != nginx.pid]
        return bool(fronts) and serves(f"{api.url}/healthcheck")

    took = wait_for(new_front_serves, 15, lambda: api.log_text()[-2000:], every=0.1)
    print(f"\n  kill -9 of nginx: a new nginx serving after {took:.1f} s")
    assert orphans and not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in orphans)


def test_tls_at_the_front(launch, tmp_path: Path, token: str) -> None:
    """SAHARA_API_TLS_CERT/_KEY with a self-signed certificate (openssl)."""
    cert, key = tmp_path / "api.crt", tmp_path / "api.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    api = launch(SAHARA_API_WORKERS=1, SAHARA_API_TLS_CERT=str(cert), SAHARA_API_TLS_KEY=str(key), wait=False)
    https = f"https://127.0.0.1:{api.port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            r = requests.get(f"{https}/v2/plugins", headers={"X-Auth-Token": token}, verify=str(cert), timeout=10)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline and api.popen.poll() is None, api.log_text()[-3000:]
            time.sleep(0.2)
    print(f"\n  GET /v2/plugins over HTTPS: {r.status_code}")
    assert r.status_code == 200 and r.json()["plugins"] is not None
    assert requests.get(f"{https}/healthcheck", verify=str(cert), timeout=10).text == "OK"
    assert requests.get(f"{api.url}/healthcheck", timeout=10).status_code == 400, "plain HTTP is refused"
