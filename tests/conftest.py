"""Fixtures every test folder shares: the local stack (once per session), its
credentials, a RabbitMQ vhost of this run's own, engines and cluster rows.
The jobs themselves live in the harness package (docs/harness.md)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from keystoneauth1 import session as ks_session

from harness.make_cluster import delete_clusters, make_clusters
from harness.procs import Proc
from harness.slow_engine import start_slow_engine
from harness.stack import Stack

# openrc, keystone and token: shared with the other suite on the stack.
pytest_plugins = ("harness.fixtures",)

# With `-n N` (pytest-xdist, make test) N worker processes run the tests; the
# stack is brought up once, by the first worker that needs it, and down once,
# by the process that started the workers (or the only one, without -n).
SHARED = "SAHARA_TESTS_SHARED_DIR"  # a directory the run's processes share


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller, or a run without -n
        os.environ[SHARED] = tempfile.mkdtemp(prefix="sahara-tests-")
        os.environ["STACK_HOLDER"] = str(os.getpid())  # the stack is held while the run lasts (harness.stack)


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        for pgid_file in Path(os.environ[SHARED]).glob("*.pgid"):  # a background job (NAME.rc when done)
            if not pgid_file.with_suffix(".rc").exists():
                stop_group(int(pgid_file.read_text()))
        if (Path(os.environ[SHARED]) / "stack.up").exists():
            Stack("tests").down()
        shutil.rmtree(os.environ[SHARED], ignore_errors=True)


def group_of(p: psutil.Process) -> int:
    """The process group of a live process (0 for a zombie or one gone)."""
    try:
        return 0 if p.status() == psutil.STATUS_ZOMBIE else os.getpgid(p.pid)
    except (OSError, psutil.Error):
        return 0


def stop_group(pgid: int, timeout: float = 60) -> None:
    """TERM a process group, then wait until it is gone (KILL after `timeout`)."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
        while any(group_of(p) == pgid for p in psutil.process_iter()):
            if time.monotonic() > deadline:
                os.killpg(pgid, signal.SIGKILL)
                return
            time.sleep(0.2)


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The local stack, brought up by the same script as `make run`, once per run;
    the tests stop only what they started, not what a `make run` started."""
    stack = Stack("tests")
    shared = Path(os.environ[SHARED])
    with (shared / "stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait for the first one's `up`
        if not (shared / "stack.up").exists():
            stack.up()
            (shared / "stack.up").touch()
    return stack


@pytest.fixture(scope="session")
def sahara_conf(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The dev config on a RabbitMQ vhost of this test run's own."""
    with stack.vhost("sahara-test", tmp_path_factory.mktemp("etc")) as conf:
        yield conf


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
