"""Fixtures every test folder shares: the local stack (once per session), its
credentials, a RabbitMQ vhost of this run's own, engines and cluster rows.
The jobs themselves live in the harness package (docs/harness.md)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from keystoneauth1 import session as ks_session

from harness import ROOT
from harness.deploy import PYTHON
from harness.procs import Proc, start
from harness.stack import keystone_session, read_openrc

STACK = ROOT / "scripts" / "stack.sh"
# The tests stop only what they started, not what a `make run` started.
STACK_ENV = {**os.environ, "STACK_STARTED": str(ROOT / ".stack" / "started.tests")}


# With `-n N` (pytest-xdist, make test) N worker processes run the tests; the
# stack is brought up once, by the first worker that needs it, and down once,
# by the process that started the workers (or the only one, without -n).
SHARED = "SAHARA_TESTS_SHARED_DIR"  # a directory the run's processes share


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller, or a run without -n
        os.environ[SHARED] = tempfile.mkdtemp(prefix="sahara-tests-")


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        for pgid_file in Path(os.environ[SHARED]).glob("*.pgid"):  # a background job (NAME.rc when done)
            if not pgid_file.with_suffix(".rc").exists():
                stop_group(int(pgid_file.read_text()))
        if (Path(os.environ[SHARED]) / "stack.up").exists():
            subprocess.run([str(STACK), "down"], env=STACK_ENV, check=False, timeout=300)
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
def stack() -> None:
    """The local stack, brought up by the same script as `make run`, once per run."""
    shared = Path(os.environ[SHARED])
    with (shared / "stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait for the first one's `up`
        if not (shared / "stack.up").exists():
            subprocess.run([str(STACK), "up"], env=STACK_ENV, check=True, timeout=1200)
            (shared / "stack.up").touch()


@pytest.fixture(scope="session")
def sahara_conf(stack: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The dev config on a RabbitMQ vhost of this test run's own."""
    vhost = f"sahara-test-{uuid.uuid4().hex[:8]}"
    subprocess.run([str(STACK), "vhost", "add", vhost], env=STACK_ENV, check=True, timeout=120)
    text = (ROOT / "etc" / "sahara" / "sahara.conf").read_text()
    path = tmp_path_factory.mktemp("etc") / "sahara.conf"
    path.write_text(text.replace("@127.0.0.1:5672/", f"@127.0.0.1:5672/{vhost}"))
    yield path
    subprocess.run([str(STACK), "vhost", "del", vhost], env=STACK_ENV, check=False, timeout=120)


@pytest.fixture(scope="session")
def openrc(stack: None) -> dict[str, str]:
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
        argv = [
            PYTHON,
            "-m",
            "harness.slow_engine",
            "--config-file",
            str(sahara_conf),
            "--delay",
            str(delay),
        ]
        proc = start("slow-engine", argv, tmp_path / "slow-engine.log", dict(os.environ))
        started.append(proc)
        deadline = time.monotonic() + 30
        while "slow engine ready" not in proc.log_text():
            if proc.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"slow engine did not start:\n{proc.log_text()}")
            time.sleep(0.1)
        return proc

    yield _start
    for proc in started:
        proc.stop(timeout=10)


@pytest.fixture
def make_cluster(sahara_conf: Path, project_id: str) -> Iterator[Callable[[], str]]:
    """A cluster row (Active, fake plugin) created through Sahara's conductor,
    destroyed the same way after the test."""
    base = [
        PYTHON,
        "-m",
        "harness.make_cluster",
        "--config-file",
        str(sahara_conf),
        "--project-id",
        project_id,
    ]
    made: list[str] = []

    def _make() -> str:
        out = subprocess.run(base, check=True, capture_output=True, text=True, timeout=60, cwd=ROOT)
        made.append(out.stdout.strip().splitlines()[-1])
        return made[-1]

    yield _make
    if made:
        subprocess.run([*base, "--delete", *made], check=True, capture_output=True, timeout=60, cwd=ROOT)
