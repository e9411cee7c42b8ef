"""The API served by uWSGI workers: auth, health, several workers, no shared DB connections."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests

from harness.deploy import MODES
from harness.procs import Api, serves, stats_socket, tree, wait_for
from harness.workload import get

MARIADB_PORT = 3306


def hit_every_worker(api: Api, path: str, token: str, workers: int) -> set[int]:
    """Send concurrent requests until the request log shows `workers` distinct pids."""
    with ThreadPoolExecutor(16) as pool:
        for _ in range(20):
            assert all(r.status_code == 200 for r in pool.map(lambda _: get(api.url, path, token), range(32)))
            pids = {pid for pid, _, p in api.served_by() if p == path}
            if len(pids) >= workers:
                return pids
    return pids


def test_healthcheck_answers_without_a_token(api: Api) -> None:
    r = get(api.url, "/healthcheck")
    assert (r.status_code, r.text) == (200, "OK")


def test_api_needs_a_token(api: Api, token: str) -> None:
    assert get(api.url, "/v2/plugins").status_code == 401
    r = get(api.url, "/v2/plugins", token)
    assert r.status_code == 200
    assert [p["name"] for p in r.json()["plugins"]] == ["fake"]


def test_drain_file_fails_healthcheck_but_keeps_serving(api: Api, token: str) -> None:
    drain = Path(api.environ["SAHARA_API_DRAIN_FILE"])
    drain.touch()
    assert get(api.url, "/healthcheck").status_code == 503
    assert get(api.url, "/v2/plugins", token).status_code == 200
    drain.unlink()
    assert get(api.url, "/healthcheck").status_code == 200


def test_ipv6_loopback_serves_in_every_mode_and_front(launch, api_mode: str, token: str) -> None:
    """SAHARA_API_HOST=::1 (issue 30): uWSGI read `::1:PORT` as 255.255.255.255:PORT
    with the direct front, and nothing answered on [::1]."""
    mode = MODES[api_mode]
    fronts = ("nginx", "direct") if mode["mode"] != "debug" else ("",)  # debug has no front
    for front in fronts:
        api = launch(**mode, SAHARA_API_HOST="::1", **({"SAHARA_API_FRONT": front} if front else {}))
        assert api.url.startswith("http://[::1]:")
        assert get(api.url, "/v2/plugins", token).status_code == 200, f"front {front or 'none'}"
        with pytest.raises(requests.ConnectionError):  # IPv6 only: nothing on IPv4 loopback
            get(f"http://127.0.0.1:{api.port}", "/healthcheck", timeout=5)
        api.stop()


@pytest.mark.modes("multi")
def test_four_workers_all_serve(api: Api, token: str) -> None:
    workers = api.worker_pids()
    assert len(workers) == 4
    served = hit_every_worker(api, "/v2/plugins", token, 4)
    print(f"requests answered by worker pids {sorted(served)}")
    assert served == workers


@pytest.mark.modes("multi")
def test_workers_never_share_a_db_connection(api: Api, token: str) -> None:
    hit_every_worker(api, "/v2/clusters", token, 4)

    def db_sockets(pid: int) -> set[tuple]:
        conns = psutil.Process(pid).connections(kind="tcp")
        return {(c.laddr, c.raddr) for c in conns if c.raddr and c.raddr.port == MARIADB_PORT}

    per_worker = {pid: db_sockets(pid) for pid in api.worker_pids()}
    print({pid: len(s) for pid, s in per_worker.items()})
    assert db_sockets(api.master) == set(), "the master must not hold DB connections its workers inherit"
    assert all(per_worker.values()), "every worker that served /v2/clusters has its own connection"
    seen: set[tuple] = set()
    for sockets in per_worker.values():
        assert not sockets & seen, "a DB socket is shared by two workers"
        seen |= sockets


def test_request_log_line_carries_the_request_id(launch, token: str) -> None:
    api = launch(SAHARA_API_WORKERS=1)
    r = get(api.url, "/v2/clusters", token)
    rid = r.headers["x-openstack-request-id"]

    def logged() -> list[str]:
        return [line for line in api.log_text().splitlines() if f"req={rid}" in line]

    wait_for(logged, 10, "the request's log line")  # uWSGI logs a request after its response is sent
    lines = logged()
    print(f"\n{lines}")
    assert len(lines) == 1 and '"GET /v2/clusters" 200 ' in lines[0] and "ms worker=1 pid=" in lines[0]


def test_stats_socket_is_local_and_reports_workers(launch) -> None:
    api = launch(SAHARA_API_WORKERS=2)
    sock = stats_socket(api.environ["SAHARA_RUN_DIR"])
    assert stat.S_ISSOCK(sock.stat().st_mode) and not sock.stat().st_mode & 0o002, "a unix socket, not world-writable"
    workers = {w["pid"] for w in api.stats()["workers"]}
    assert len(workers) == 2 and all(psutil.Process(pid).ppid() == api.master for pid in workers)
    metrics = int(api.environ["SAHARA_METRICS_PORT"])
    # The master starts the exporter when its workers start.
    wait_for(lambda: serves(f"http://127.0.0.1:{metrics}/metrics"), 30, "the metrics exporter", every=0.2)
    processes = tree(api.master)
    listening = {c.laddr for p in processes for c in p.connections("inet") if c.status == psutil.CONN_LISTEN}
    assert listening == {("127.0.0.1", api.port), ("127.0.0.1", metrics)}, "HTTP and metrics, on loopback only"
