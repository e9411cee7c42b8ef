"""Worker guards, each with a small limit so it trips within the test:
harakiri, max-requests, reload-on-rss, need-app, respawn throttling."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
import requests

from harness.procs import wait_for
from harness.troubleshooting import assert_documented
from harness.workload import get

# uWSGI never lets a worker be recycled younger than this (min-worker-lifetime).
MIN_LIFETIME = 10


def test_harakiri_kills_a_stuck_request_and_replaces_the_worker(launch, slow_engine, make_cluster, token) -> None:
    slow_engine(60)  # the engine never answers in time
    api = launch(SAHARA_API_WORKERS=2, SAHARA_API_TIMEOUT=3, SAHARA_API_STOP_TIMEOUT=10)
    before = api.worker_pids()
    cluster = make_cluster()
    t0 = time.monotonic()
    body = {"resize_node_groups": [{"name": "workers", "count": 2}]}
    # The worker dies with the request: the nginx front answers 502 (direct: the connection drops).
    r = requests.put(f"{api.url}/v2/clusters/{cluster}", json=body, headers={"X-Auth-Token": token}, timeout=30)
    assert r.status_code == 502, r.text
    killed_after = time.monotonic() - t0
    log = api.log_text()
    print(f"\nstuck request cut after {killed_after:.1f} s (harakiri 3 s)")
    assert "HARAKIRI ON WORKER" in log
    assert_documented(next(line for line in log.splitlines() if "HARAKIRI ON WORKER" in line).split(" - ", 1)[1])
    assert f"/v2/clusters/{cluster}" in log.split("HARAKIRI ON WORKER", 1)[1], "the log names the stuck path"
    assert killed_after < 3 + 5
    wait_for(lambda: api.worker_pids() - before, 10, "a new worker")
    assert len(api.worker_pids()) == 2 and api.worker_pids() != before, "the worker was replaced"
    assert get(api.url, "/v2/plugins", token).status_code == 200


@pytest.mark.parametrize(
    "limits",
    [
        pytest.param({"SAHARA_API_MAX_REQUESTS": 5}, id="max-requests"),
        pytest.param({"SAHARA_API_MAX_RSS_MB": 20}, id="reload-on-rss"),
    ],
)
def test_worker_is_recycled(launch, token, limits: dict[str, int]) -> None:
    api = launch(SAHARA_API_WORKERS=1, SAHARA_API_THREADS=1, **limits)
    (first,) = api.worker_pids()
    statuses = []
    deadline = time.monotonic() + MIN_LIFETIME + 20
    while api.worker_pids() == {first} and time.monotonic() < deadline:
        statuses.append(get(api.url, "/v2/plugins", token).status_code)
        time.sleep(0.2)
    print(f"\nworker recycled after {len(statuses)} requests; statuses {set(statuses)}")
    assert api.worker_pids() != {first}, "the worker was recycled"
    assert "The work of process" in api.log_text()
    assert set(statuses) == {200}, "recycling loses no request"
    assert get(api.url, "/v2/plugins", token).status_code == 200


def test_broken_app_stops_startup(launch, sahara_conf, tmp_path) -> None:
    """need-app: an app that cannot load stops uWSGI instead of serving 500s."""
    broken = tmp_path / "broken-app.conf"
    broken.write_text(
        sahara_conf.read_text().replace("[DEFAULT]\n", "[DEFAULT]\napi_paste_config = /nonexistent.ini\n", 1)
    )
    proc = launch(wait=False, SAHARA_CONFIG_FILES=str(broken))
    rc = proc.wait(timeout=60)
    errors = [line for line in proc.log_text().splitlines() if line.startswith("sahara-api: ERROR:")]
    print(f"\nrc={rc}: {errors}")
    assert rc != 0
    assert len(errors) == 1 and "failed to load" in errors[0]
    assert_documented(errors[0])
    assert proc.leftovers() == []


def test_respawn_storm_is_throttled(launch, token) -> None:
    """Workers dying faster than uWSGI respawns them make the master pause
    (forkbomb-delay), and the API comes back by itself."""
    api = launch(SAHARA_API_WORKERS=2)
    deadline = time.monotonic() + 10
    while "respawning too fast" not in api.log_text() and time.monotonic() < deadline:
        for pid in api.worker_pids():
            with contextlib.suppress(ProcessLookupError):  # it died since it was listed
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    assert "respawning too fast" in api.log_text()
    assert_documented(next(line for line in api.log_text().splitlines() if "respawning too fast" in line))
    api.wait_ready(timeout=30)
    assert get(api.url, "/v2/plugins", token).status_code == 200
