"""Fixtures of the cluster checks (`make cluster-test`): the local stack, shown
to the pods at the bridge's address through relays, a Keystone endpoint the
pods can use, a RabbitMQ vhost of the run's own, and the values a deployer
gives the chart (addresses, secrets, the image: nothing else).

scripts/cluster-test.sh brings the cluster up before pytest and down after
it, whatever happened; these fixtures undo what they did to the stack."""

from __future__ import annotations

import configparser
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from keystoneauth1 import session as ks_session

from cluster.values import STACK_PORTS, write_values
from harness.kube import Kube
from harness.stack import Stack
from harness.tcp_proxy import TcpProxy

# openrc, keystone and token: shared with the other suite on the stack.
pytest_plugins = ("harness.fixtures",)


@pytest.fixture(scope="session")
def kube() -> Kube:
    return Kube.from_run()


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with Stack("cluster").running() as stack:
        yield stack


def listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=2):
        return True
    return False


@pytest.fixture(scope="session")
def relays(kube: Kube, stack: Stack) -> Iterator[dict[str, TcpProxy]]:
    proxies = {
        # A service already listening on every address (RabbitMQ does) needs none.
        name: TcpProxy(port, listen_host=kube.gateway, port=port).start()
        for name, port in STACK_PORTS.items()
        if not listening(kube.gateway, port)
    }
    yield proxies
    for proxy in proxies.values():
        proxy.close()


@pytest.fixture(scope="session")
def internal_endpoint(kube: Kube, keystone: ks_session.Session, openrc: dict[str, str]) -> Iterator[str]:
    """An `internal` identity endpoint at the bridge's address (the chart's
    keystone.interface default): keystonemiddleware in the pods finds Keystone
    through the catalog, whose public endpoint is this machine's loopback."""
    base = openrc["OS_AUTH_URL"].rstrip("/")
    service = keystone.get(f"{base}/services", params={"type": "identity"}).json()["services"][0]["id"]
    url = f"http://{kube.gateway}:{STACK_PORTS['keystone']}/v3"
    body = {"endpoint": {"service_id": service, "interface": "internal", "url": url, "region_id": "RegionOne"}}
    endpoint = keystone.post(f"{base}/endpoints", json=body).json()["endpoint"]["id"]
    yield url
    keystone.delete(f"{base}/endpoints/{endpoint}")


@pytest.fixture(scope="session")
def transport_url(kube: Kube, stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A RabbitMQ vhost of this run's own (Stack.vhost), at the bridge's address."""
    with stack.vhost("cluster", tmp_path_factory.mktemp("etc")) as conf:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(conf)
        yield parser["DEFAULT"]["transport_url"].replace("@127.0.0.1:", f"@{kube.gateway}:")


@pytest.fixture(scope="session")
def values(
    kube: Kube,
    relays: dict[str, TcpProxy],
    internal_endpoint: str,
    transport_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    return write_values(tmp_path_factory.mktemp("values") / "values.yaml", kube, transport_url)
