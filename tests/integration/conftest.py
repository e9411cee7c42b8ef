"""Fixtures that own real processes: the local stack (once per session), API
servers, engines. Every process runs in its own process group and is killed
with its group at teardown, whatever the test did (harness.py, shared with
the benchmark in bench/)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from keystoneauth1 import session as ks_session

# Re-exported: the test modules import Api and Proc from here.
from harness import ROOT, Api, Proc, free_port, keystone_session, read_openrc, start

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable  # the .venv's python: the launcher execs its siblings
LAUNCHER = ROOT / "sahara_api_launcher.py"
STACK = ROOT / "scripts" / "stack.sh"
# The tests stop only what they started, not what a `make run` started.
STACK_ENV = {**os.environ, "STACK_STARTED": str(ROOT / ".stack" / "started.tests")}


@pytest.fixture(scope="session")
def stack() -> Iterator[None]:
    """The local stack, brought up by the same script as `make run`."""
    subprocess.run([str(STACK), "up"], env=STACK_ENV, check=True, timeout=1200)
    yield
    subprocess.run([str(STACK), "down"], env=STACK_ENV, check=False, timeout=300)


@pytest.fixture(scope="session")
def sahara_conf(stack: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dev config, on the tests' own RabbitMQ vhost."""
    text = (ROOT / "etc" / "sahara" / "sahara.conf").read_text()
    path = tmp_path_factory.mktemp("etc") / "sahara.conf"
    path.write_text(text.replace("@127.0.0.1:5672/", "@127.0.0.1:5672/sahara-test"))
    return path


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
def base_env(sahara_conf: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
    return {
        **env,
        "SAHARA_CONFIG_FILES": str(sahara_conf),
        "SAHARA_API_DRAIN_FILE": str(tmp_path / "drain"),
        "SAHARA_RUN_DIR": str(tmp_path),
        "VIRTUAL_ENV": str(Path(PYTHON).parent.parent),
    }


@pytest.fixture
def launch(base_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """launch(mode, **env) starts `sahara_api_launcher.py mode`; API servers wait until ready."""
    started: list[Proc] = []

    def _launch(mode: str = "api", wait: bool = True, **env: str | int) -> Proc:
        port = free_port()
        full_env = {**base_env, "SAHARA_API_PORT": str(port), **{k: str(v) for k, v in env.items()}}
        name = f"{mode}-{len(started)}"
        proc = start(
            name,
            [PYTHON, str(LAUNCHER), mode],
            tmp_path / f"{name}.log",
            full_env,
            cls=Api if mode == "api" else Proc,
            **({"port": port, "environ": full_env} if mode == "api" else {}),
        )
        started.append(proc)
        if wait and isinstance(proc, Api):
            proc.wait_ready()
        return proc

    yield _launch
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def slow_engine(sahara_conf: Path, tmp_path: Path) -> Iterator[Callable[[float], Proc]]:
    """slow_engine(delay) answers the API's sync RPC after `delay` seconds."""
    started: list[Proc] = []

    def _start(delay: float) -> Proc:
        argv = [PYTHON, str(HERE / "slow_engine.py"), "--config-file", str(sahara_conf), "--delay", str(delay)]
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
def make_cluster(sahara_conf: Path, project_id: str) -> Callable[[], str]:
    """A cluster row (Active, fake plugin) created through Sahara's conductor."""

    def _make() -> str:
        argv = [PYTHON, str(HERE / "make_cluster.py"), "--config-file", str(sahara_conf), "--project-id", project_id]
        out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60)
        return out.stdout.strip().splitlines()[-1]

    return _make
