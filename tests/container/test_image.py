"""The sahara-api image run as a user runs it (`docker run` arguments, through
podman): auth, read-only and non-root, env-only configuration, one-line
errors, SIGTERM under load, a killed worker, all-in-one, db-sync."""

from __future__ import annotations

import configparser
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from harness.load import UPLOAD_SIGNAL_AT, Load, trickle_put
from harness.podman import podman
from harness.procs import serves, signal_uwsgi_master, wait_for
from harness.troubleshooting import assert_documented
from harness.workload import get, scale_request

ROOT = Path(__file__).resolve().parents[2]
EX_CONFIG = 78
IMAGE_UID = 42386
# As tests/integration/test_supervision.py: a request started this long before
# a signal was accepted by a worker; later ones may meet a closing socket.
ACCEPTED = 0.05
# What the real sahara-engine reports (sahara.service.heat.commons.HEAT_ENGINE_VERSION).
REAL_ENGINE = "heat.3.0"


@pytest.fixture
def stack_env(sahara_conf: Path) -> dict[str, str]:
    """The dev stack's settings as the environment variables the README gives users."""
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(sahara_conf)
    ks = conf["keystone_authtoken"]
    return {
        "OS_DATABASE__CONNECTION": conf["database"]["connection"],
        "OS_DEFAULT__TRANSPORT_URL": conf["DEFAULT"]["transport_url"],
        "OS_KEYSTONE_AUTHTOKEN__AUTH_URL": ks["auth_url"],
        "OS_KEYSTONE_AUTHTOKEN__WWW_AUTHENTICATE_URI": ks["www_authenticate_uri"],
        "OS_KEYSTONE_AUTHTOKEN__PASSWORD": ks["password"],
        "OS_KEYSTONE_AUTHTOKEN__MEMCACHED_SERVERS": ks["memcached_servers"],
        # The dev Keystone has only public endpoints; the fake plugin is the one installed.
        "OS_KEYSTONE_AUTHTOKEN__INTERFACE": "public",
        "OS_DEFAULT__PLUGINS": "fake",
    }


def test_api_answers_with_a_token_and_401_without(run_container, mounted_conf, token: str) -> None:
    c = run_container(env={"SAHARA_API_WORKERS": "2"}, options=mounted_conf)
    assert get(c.url, "/healthcheck").text == "OK"
    assert get(c.url, "/v2/plugins").status_code == 401
    r = get(c.url, "/v2/plugins", token)
    assert r.status_code == 200
    assert [p["name"] for p in r.json()["plugins"]] == ["fake"]
    assert len(c.uwsgi_workers()) == 2


@pytest.mark.parametrize("user", [None, "12345:12345"], ids=["image-uid", "arbitrary-uid"])
def test_runs_read_only_as_non_root(run_container, mounted_conf, token: str, user: str | None) -> None:
    c = run_container(env={"SAHARA_API_WORKERS": "2"}, options=[*mounted_conf, *(["--user", user] if user else [])])
    assert get(c.url, "/v2/clusters", token).status_code == 200
    uids = {p.uids().real for p in c.processes()}
    print(f"uids of the container's processes: {uids}")
    assert uids == {int(user.split(":")[0]) if user else IMAGE_UID}
    denied = c.exec("touch", "/opt/sahara-api/x")
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert c.exec("touch", "/tmp/x").returncode == 0


def test_configured_by_environment_only(run_container, stack_env: dict[str, str], token: str) -> None:
    """The README's `docker run`: no mounted config, only environment variables."""
    c = run_container(env={**stack_env, "SAHARA_API_WORKERS": "2"})
    assert get(c.url, "/v2/plugins").status_code == 401
    assert get(c.url, "/v2/clusters", token).status_code == 200


@pytest.mark.parametrize(
    ("mode", "unset", "expected"),
    [
        ("api", "OS_DATABASE__CONNECTION", "[database] connection is not set"),
        ("api", "OS_KEYSTONE_AUTHTOKEN__PASSWORD", "[keystone_authtoken] password is not set"),
        ("engine", "OS_DEFAULT__TRANSPORT_URL", "[DEFAULT] transport_url is not set"),
        ("all-in-one", "OS_KEYSTONE_AUTHTOKEN__AUTH_URL", "OS_KEYSTONE_AUTHTOKEN__AUTH_URL"),
        ("db-sync", "OS_DATABASE__CONNECTION", "OS_DATABASE__CONNECTION"),
        ("debug", "", "make debug"),
        ("bogus", "", "unknown mode 'bogus'"),
    ],
)
def test_missing_setting_stops_with_one_line(run_container, stack_env, mode: str, unset: str, expected: str) -> None:
    env = {k: v for k, v in stack_env.items() if k != unset}
    c = run_container(mode, env=env, wait=False, api=mode in ("api", "all-in-one"))
    rc = c.wait(timeout=60)
    out = c.logs().strip()
    print(f"{mode} without {unset or 'anything'}: rc={rc}: {out}")
    assert rc == EX_CONFIG
    assert len(out.splitlines()) == 1 and out.startswith("sahara-api: ERROR: ")
    assert expected in out
    assert "dev-secret" not in out
    assert_documented(out)


def test_healthcheck_follows_the_drain_file(run_container, mounted_conf) -> None:
    c = run_container(env={"SAHARA_API_WORKERS": "2"}, options=mounted_conf)
    assert podman("healthcheck", "run", c.name).returncode == 0
    assert c.exec("sh", "-c", 'touch "$SAHARA_API_DRAIN_FILE"').returncode == 0
    assert get(c.url, "/healthcheck").status_code == 503
    assert podman("healthcheck", "run", c.name).returncode != 0


def test_sigterm_under_load_exits_0_without_failed_requests(
    run_container, mounted_conf, token: str, slow_engine, make_cluster
) -> None:
    """`docker stop` with a 3 s scale request and an upload in flight (4 MiB
    at 1 MiB/s, the signal 1.5 s into it) and 4 clients running: every
    request sent before the signal is answered, the container exits 0.
    Requests sent after it meet a closing socket (refused or reset), as with
    any stopping server that no balancer drains first: the chart's preStop
    does that (test_chart_contract.py), and this test counts them."""
    slow_engine(3.0)
    cluster = make_cluster()
    c = run_container(env={"SAHARA_API_WORKERS": "2"}, options=mounted_conf)
    load = Load(c.url, token, path="/v2/clusters").start()
    slow: dict[str, object] = {}
    in_flight = threading.Thread(target=lambda: slow.update(r=_try(lambda: scale_request(c.url, token, cluster))))
    in_flight.start()
    upload: dict[str, float | int | str] = {}
    uploader = threading.Thread(target=trickle_put, args=(c.url, token, upload))
    uploader.start()
    time.sleep(UPLOAD_SIGNAL_AT)  # the scale request is waiting on the engine, the upload half-way
    t_signal = time.monotonic()
    stop = podman("stop", "-t", "60", c.name, timeout=90)
    took = time.monotonic() - t_signal
    in_flight.join(timeout=30)
    uploader.join(timeout=30)
    load.stop()
    # A request started this long before the signal had been accepted by a worker.
    before = t_signal - ACCEPTED
    after = [r for r in load.results if r.start >= before and not r.ok]
    print(
        f"stop took {took:.1f} s, exit {c.exit_code()}; slow request: {slow.get('r')}; upload: {upload.get('status')}"
        f" at +{float(upload.get('end', 0)) - t_signal:.2f} s; load: {load.summary()}; "
        f"failed before the signal: {len(load.failed(before, count_refused=False))}; not served after it: {len(after)}"
    )
    assert stop.returncode == 0
    assert c.exit_code() == 0
    assert isinstance(slow["r"], requests.Response), f"the in-flight request was cut: {slow['r']}"
    assert slow["r"].status_code == 400 and "slow-engine" in slow["r"].text
    assert upload.get("status") == 404 and float(upload["end"]) > t_signal, f"Sahara's own answer: {upload}"
    assert load.ok > 0 and load.failed(before, count_refused=False) == []


def _try(call):  # noqa: ANN001, ANN202
    try:
        return call()
    except requests.RequestException as e:
        return e


def test_killed_worker_is_replaced(run_container, mounted_conf, token: str) -> None:
    c = run_container(env={"SAHARA_API_WORKERS": "2"}, options=mounted_conf)
    before = c.uwsgi_workers()
    load = Load(c.url, token, path="/v2/clusters", clients=2).start()
    time.sleep(0.5)
    victim = min(before)
    psutil.Process(victim).kill()

    def replaced() -> bool:
        after = c.uwsgi_workers()
        return len(after) == 2 and victim not in after

    respawn = wait_for(replaced, 10, f"2 workers, {victim} not one of them", every=0.02)
    time.sleep(1.0)
    load.stop()
    print(f"worker {victim} killed; replaced after {respawn:.2f} s; load: {load.summary()}")
    assert (
        len(load.failed(count_refused=False)) <= load.clients
    ), "only requests in flight on the killed worker may fail"
    assert get(c.url, "/v2/plugins", token).status_code == 200
    assert c.running()


def test_all_in_one_runs_api_and_engine(run_container, mounted_conf, token: str, make_cluster) -> None:
    """supervisord in the container: a scale request round-trips to the real
    engine over RabbitMQ; `docker stop` with an upload in flight: the upload
    gets Sahara's answer, both programs stop and the container exits 0."""
    c = run_container("all-in-one", env={"SAHARA_API_WORKERS": "2"}, options=mounted_conf)
    r = scale_request(c.url, token, make_cluster())
    assert r.status_code == 400 and REAL_ENGINE in r.text, r.text
    upload: dict[str, float | int | str] = {}
    uploader = threading.Thread(target=trickle_put, args=(c.url, token, upload))
    uploader.start()
    time.sleep(UPLOAD_SIGNAL_AT)
    t_signal = time.monotonic()
    assert podman("stop", "-t", "90", c.name, timeout=120).returncode == 0
    took = time.monotonic() - t_signal
    uploader.join(timeout=30)
    log = c.logs()
    print(log[-600:])
    print(
        f"[all-in-one, docker stop] {took:.1f} s; upload {upload.get('status')}"
        f" at +{float(upload.get('end', 0)) - t_signal:.2f} s"
    )
    assert upload.get("status") == 404 and float(upload["end"]) > t_signal, f"Sahara's own answer: {upload}"
    assert c.exit_code() == 0
    assert "stopped: sahara-api (exit status 0)" in log
    assert "stopped: sahara-engine (exit status 0)" in log


def test_signal_to_uwsgi_master_in_the_image_leaves_no_nginx(run_container, mounted_conf) -> None:
    """INT, QUIT and KILL to uWSGI's master itself in the all-in-one image, as
    under make run (tests/integration/test_supervisord.py, issue 30): no nginx
    of the old master is left and supervisord's new sahara-api serves again
    (the bound: procs.signal_uwsgi_master)."""
    c = run_container("all-in-one", env={"SAHARA_API_WORKERS": "2"}, options=mounted_conf)
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
        wait_for(lambda: serves(f"{c.url}/healthcheck"), 30, lambda: c.logs()[-3000:], every=0.1)
        took = signal_uwsgi_master(c.uwsgi_master().pid, sig, c.url, c.port, c.logs)
        print(f"\n  {sig.name} to uWSGI's master in the image: serving again after {took:.1f} s")


def test_all_in_one_with_supervisord_killed_ends_by_itself(run_container, mounted_conf, token: str) -> None:
    """kill -9 of supervisord inside the container, under load with a request
    in flight: the API and the engine stop gracefully by themselves (the
    launcher's parent-death TERM), the entrypoint waits for them, then the
    container ends: nothing left, nothing serving, the port free."""
    c = run_container("all-in-one", env={"SAHARA_API_WORKERS": "2"}, options=mounted_conf)
    wait_for(lambda: "success: sahara-engine entered RUNNING state" in c.logs(), 60, lambda: c.logs()[-2000:], 0.2)
    processes = {p.pid for p in c.processes()}
    load = Load(c.url, token, path="/v2/clusters", clients=2).start()
    slow: dict[str, float | int | str] = {}
    in_flight = threading.Thread(target=trickle_put, args=(c.url, token, slow))
    in_flight.start()
    time.sleep(UPLOAD_SIGNAL_AT)  # its head is in, its body is coming
    t_signal = time.monotonic()
    # No ps or kill binary in the image: the shell's kill and supervisord's pidfile.
    assert c.exec("sh", "-c", 'kill -9 "$(cat "$SAHARA_RUN_DIR/supervisord.pid")"').returncode == 0
    rc = c.wait(timeout=90)
    took = time.monotonic() - t_signal
    in_flight.join(timeout=30)
    load.stop()
    before = t_signal - ACCEPTED
    left = [pid for pid in processes if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    print(
        f"\n[all-in-one, supervisord killed] container exited {rc} after {took:.1f} s; in-flight request:"
        f" {slow.get('status')} at +{float(slow.get('end', 0)) - t_signal:.2f} s; load: {load.summary()};"
        f" failed before the signal: {len(load.failed(before, count_refused=False))}; processes left: {left}"
    )
    assert took < 60
    assert load.failed(before, count_refused=False) == []
    assert left == []
    with pytest.raises(requests.ConnectionError):
        get(c.url, "/healthcheck")
    log = c.logs()
    assert "killing what did not stop" not in log, "everything stopped by itself"
    assert slow.get("status") == 404 and float(slow["end"]) > t_signal, f"Sahara's own answer: {slow}"


@pytest.fixture
def empty_database(sahara_conf: Path) -> str:
    """A new, empty MariaDB database the sahara user owns, dropped afterwards."""
    name = f"sahara_image_{os.getpid()}"
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    sql = f"CREATE DATABASE {name}; GRANT ALL ON {name}.* TO 'sahara'@'127.0.0.1';"
    subprocess.run([*sudo, "mariadb", "-e", sql], check=True, timeout=30)
    url = re.sub(r"/sahara$", f"/{name}", configparser_url(sahara_conf))
    yield url
    subprocess.run([*sudo, "mariadb", "-e", f"DROP DATABASE IF EXISTS {name}"], check=True, timeout=30)


def configparser_url(sahara_conf: Path) -> str:
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(sahara_conf)
    return conf["database"]["connection"]


def test_db_sync_is_idempotent(run_container, empty_database: str) -> None:
    runs = []
    for _ in range(2):
        c = run_container("db-sync", env={"OS_DATABASE__CONNECTION": empty_database}, api=False, wait=False)
        runs.append((c.wait(timeout=180), c.logs()))
    migrations = [log.count("Running upgrade") for _, log in runs]
    print(f"db-sync exit codes {[rc for rc, _ in runs]}, migrations applied {migrations}")
    assert [rc for rc, _ in runs] == [0, 0]
    assert migrations[0] > 0, "the first run creates the schema"
    assert migrations[1] == 0, "the second run has nothing to do"


def test_tls_at_the_front_and_its_healthcheck(run_container, mounted_conf, tmp_path: Path) -> None:
    """HTTPS with a self-signed certificate mounted read-only; the image's
    HEALTHCHECK follows it (and the drain file) over HTTPS."""
    tls = tmp_path / "tls"
    tls.mkdir(mode=0o755)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tls / "tls.key"), "-out", str(tls / "tls.crt")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    for f in tls.iterdir():
        f.chmod(0o644)  # the image's uid reads them (a Secret volume's default mode)
    env = {"SAHARA_API_WORKERS": "1", "SAHARA_API_TLS_CERT": "/tls/tls.crt", "SAHARA_API_TLS_KEY": "/tls/tls.key"}
    c = run_container(env=env, options=[*mounted_conf, "-v", f"{tls}:/tls:ro"], wait=False)
    deadline = time.monotonic() + 120
    while True:
        try:
            r = requests.get(f"https://127.0.0.1:{c.port}/healthcheck", verify=str(tls / "tls.crt"), timeout=5)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline and c.running(), c.logs()[-3000:]
            time.sleep(0.5)
    assert r.status_code == 200
    assert podman("healthcheck", "run", c.name).returncode == 0
    assert c.exec("sh", "-c", 'touch "$SAHARA_API_DRAIN_FILE"').returncode == 0
    assert podman("healthcheck", "run", c.name).returncode != 0
