"""R6: the engine stopped, or RabbitMQ out of reach; other requests keep
answering and the cluster row is untouched.

Engine stopped: the synchronous RPC fails after rpc_response_timeout with a
5xx JSON error. Broker gone: oslo.messaging retries the send until the broker
is back (Sahara sets no retry limit), so the request waits for the broker,
then finishes; it is neither lost nor answered early (docs/signals.md)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from harness.load import Load
from harness.tcp_proxy import TcpProxy
from harness.workload import scale_request

RPC_TIMEOUT = 5
RABBITMQ_PORT = 5672


def scale(url: str, token: str, cluster_id: str) -> tuple[float, requests.Response]:
    t0 = time.monotonic()
    r = scale_request(url, token, cluster_id, timeout=120)
    return time.monotonic() - t0, r


def cluster_state(url: str, token: str, cluster_id: str) -> tuple[str, list]:
    c = requests.get(f"{url}/v2/clusters/{cluster_id}", headers={"X-Auth-Token": token}, timeout=30).json()["cluster"]
    return c["status"], [(ng["name"], ng["count"]) for ng in c["node_groups"]]


@pytest.fixture
def short_rpc_timeout(tmp_path: Path) -> Path:
    path = tmp_path / "rpc-timeout.conf"
    path.write_text(f"[DEFAULT]\nrpc_response_timeout = {RPC_TIMEOUT}\n")
    return path


def test_engine_stopped(launch, make_cluster, token, sahara_conf: Path, short_rpc_timeout: Path) -> None:
    api = launch(SAHARA_API_WORKERS=2, SAHARA_CONFIG_FILES=f"{sahara_conf}:{short_rpc_timeout}")
    cluster = make_cluster()
    before = cluster_state(api.url, token, cluster)
    with Load(api.url, token) as load:
        load.warm()
        took, r = scale(api.url, token, cluster)
    print(f"\n[R6 engine stopped] {r.status_code} after {took:.1f} s: {r.text[:120]}; load: {load.summary()}")
    assert 500 <= r.status_code < 600 and r.headers["content-type"].startswith("application/json")
    assert took < RPC_TIMEOUT + 10
    assert load.failed() == []
    assert cluster_state(api.url, token, cluster) == before


def test_broker_out_of_reach(launch, make_cluster, token, sahara_conf: Path, short_rpc_timeout: Path, tmp_path) -> None:
    proxy = TcpProxy(RABBITMQ_PORT).start()
    try:
        via_proxy = tmp_path / "via-proxy.conf"
        via_proxy.write_text(sahara_conf.read_text().replace("@127.0.0.1:5672/", f"@127.0.0.1:{proxy.port}/"))
        api = launch(SAHARA_API_WORKERS=2, SAHARA_CONFIG_FILES=f"{via_proxy}:{short_rpc_timeout}")
        cluster = make_cluster()
        before = cluster_state(api.url, token, cluster)
        outage = 5.0
        with Load(api.url, token) as load, ThreadPoolExecutor(1) as pool:
            load.warm()
            proxy.stop()
            pending = pool.submit(scale, api.url, token, cluster)
            time.sleep(outage)
            assert not pending.done(), "the RPC request waits for the broker"
            proxy.start()
            took, r = pending.result()
        print(f"\n[R6 broker gone {outage:.0f} s] {r.status_code} after {took:.1f} s: {r.text[:80]}; {load.summary()}")
        # Back in the broker, nobody answers in this vhost: the RPC times out.
        assert 500 <= r.status_code < 600 and r.headers["content-type"].startswith("application/json")
        assert took < outage + RPC_TIMEOUT + 30
        assert load.failed() == []
        assert cluster_state(api.url, token, cluster) == before
    finally:
        proxy.close()
