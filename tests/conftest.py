"""Fixtures every test folder shares: the local stack (once per session), its
credentials, a RabbitMQ vhost of this run's own, engines and cluster rows.
The jobs themselves live in the harness package (docs/harness.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from keystoneauth1 import session as ks_session

from harness.make_cluster import delete_clusters, make_clusters
from harness.procs import Proc
from harness.slow_engine import start_slow_engine
from harness.stack import Stack, keystone_session, read_openrc


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The local stack, brought up by the same script as `make run`; the tests
    stop only what they started, not what a `make run` started."""
    with Stack("tests").running() as stack:
        yield stack


@pytest.fixture(scope="session")
def sahara_conf(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The dev config on a RabbitMQ vhost of this test run's own."""
    with stack.vhost("sahara-test", tmp_path_factory.mktemp("etc")) as conf:
        yield conf


@pytest.fixture(scope="session")
def openrc(stack: Stack) -> dict[str, str]:
    return read_openrc()


@pytest.fixture(scope="session")
def keystone(openrc: dict[str, str]) -> ks_session.Session:
    return keystone_session(openrc)


@pytest.fixture(scope="session")
def token(keystone: ks_session.Session) -> str:
    return keystone.get_token()


@pytest.fixture(scope="session")
def project_id(keystone: ks_session.Session) -> str:
    return keystone.get_project_id()


@pytest.fixture
def slow_engine(sahara_conf: Path, tmp_path: Path) -> Iterator[Callable[[float], Proc]]:
    """slow_engine(delay) answers the API's sync RPC after `delay` seconds."""
    started: list[Proc] = []

    def _start(delay: float) -> Proc:
        started.append(start_slow_engine(sahara_conf, delay, tmp_path / "slow-engine.log"))
        return started[-1]

    yield _start
    for proc in started:
        proc.stop(timeout=10)


@pytest.fixture
def make_cluster(sahara_conf: Path, project_id: str) -> Iterator[Callable[[], str]]:
    """A cluster row (Active, fake plugin) created through Sahara's conductor,
    destroyed the same way after the test."""
    made: list[str] = []

    def _make() -> str:
        made.append(make_clusters(sahara_conf, project_id))
        return made[-1]

    yield _make
    if made:
        delete_clusters(sahara_conf, project_id, made)
