"""Fixtures that own real processes: the local stack (once per session), API
servers, engines. Every process runs in its own process group and is killed
with its group at teardown, whatever the test did (harness.py, shared with
the benchmark in bench/)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from keystoneauth1 import session as ks_session

# Re-exported: the test modules import Api and Proc from here.
from harness import ROOT, Api, Proc, Prometheus, free_port, keystone_session, read_openrc, start, start_prometheus

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable  # the .venv's python: the launcher execs its siblings
LAUNCHER = ROOT / "sahara_api_launcher.py"
STACK = ROOT / "scripts" / "stack.sh"
# The tests stop only what they started, not what a `make run` started.
STACK_ENV = {**os.environ, "STACK_STARTED": str(ROOT / ".stack" / "started.tests")}
# Launcher modes that serve the API over HTTP.
SERVING_MODES = ("api", "debug", "all-in-one", "container")
# The container mode runs the image `make image` builds, as tests/container does.
IMAGE = os.environ.get("SAHARA_IMAGE", "sahara-api:latest")
PODMAN_RUN = ["podman", "--runtime", "runc", "run", "--network", "host"]
PODMAN_RUN += ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]


# The modes the API runs in. A test that takes the `api` fixture runs once per
# mode, its id naming the mode; `@pytest.mark.modes(...)` narrows the list and
# SAHARA_TEST_MODES=debug,multi (make test MODE=...) picks modes for a run.
# Adding a mode is one line here.
MODES: dict[str, dict[str, str | int]] = {
    "single": {"mode": "api", "SAHARA_API_WORKERS": 1},
    "multi": {"mode": "api", "SAHARA_API_WORKERS": 4},
    "debug": {"mode": "debug"},
    "supervisord": {"mode": "all-in-one", "SAHARA_API_WORKERS": 2},
    "container": {"mode": "container", "SAHARA_API_WORKERS": 2},
}


def selected_modes() -> list[str]:
    wanted = [m for m in os.environ.get("SAHARA_TEST_MODES", "").split(",") if m]
    unknown = set(wanted) - set(MODES)
    if unknown:
        raise pytest.UsageError(f"unknown mode(s) {sorted(unknown)} in SAHARA_TEST_MODES: use {', '.join(MODES)}")
    return wanted or list(MODES)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "modes(*names): run this mode-matrix test only in these modes")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "api_mode" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("modes")
        modes = [m for m in selected_modes() if not marker or m in marker.args]
        metafunc.parametrize("api_mode", modes)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With SAHARA_TEST_MODES set, run the mode matrix only."""
    if os.environ.get("SAHARA_TEST_MODES"):
        keep = [i for i in items if "api_mode" in getattr(i, "fixturenames", ())]
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


@dataclass
class ContainerApi(Api):
    """The image in api mode under `podman run` (popen: the attached client),
    read-only, as the image's own uid; pid is the uWSGI master on the host."""

    container: str = ""

    @property
    def pid(self) -> int:
        out = subprocess.run(["podman", "inspect", "--format", "{{.State.Pid}}", self.container], **QUIET)
        init = int(out.stdout.strip() or 0)  # tini; the launcher exec'd uWSGI under it
        children = psutil.Process(init).children() if init else []
        if not children:
            raise ProcessLookupError(self.container)
        return children[0].pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        subprocess.run(["podman", "kill", "--signal", str(int(sig)), self.container], **QUIET)
        try:
            rc = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
        subprocess.run(["podman", "rm", "-f", "-t", "0", self.container], **QUIET)
        return rc if rc is not None else self.popen.wait(timeout=30)


QUIET = {"capture_output": True, "text": True, "timeout": 60}


def start_container(name: str, env: dict[str, str], log: Path, tmp_path: Path) -> ContainerApi:
    """`podman run` of the image with the SAHARA_* knobs of env; the config
    files and a directory for the drain file are mounted at the same paths."""
    if subprocess.run(["podman", "image", "exists", IMAGE], **QUIET).returncode != 0:
        pytest.skip(f"no {IMAGE} image here: run `make image` (make test builds it)")
    shared = tmp_path / f"{name}-shared"  # readable by the image's uid, unlike tmp_path
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    knobs = {k: v for k, v in env.items() if k.startswith("SAHARA_") and k != "SAHARA_RUN_DIR"}
    knobs |= {"SAHARA_API_HOST": "127.0.0.1", "SAHARA_API_DRAIN_FILE": str(shared / "drain")}
    container = f"sahara-{name}-{uuid.uuid4().hex[:6]}"
    argv = [*PODMAN_RUN, "--name", container, "--read-only", "--tmpfs", "/tmp:rw,mode=1777"]
    argv += [a for f in [*knobs["SAHARA_CONFIG_FILES"].split(":"), str(shared)] for a in ("-v", f"{f}:{f}:ro")]
    argv += [a for k, v in knobs.items() for a in ("-e", f"{k}={v}")]
    proc = start(name, [*argv, IMAGE, "api"], log, dict(os.environ), cls=ContainerApi, container=container)
    proc.port, proc.environ = int(knobs["SAHARA_API_PORT"]), knobs
    return proc


@pytest.fixture(scope="session")
def stack() -> Iterator[None]:
    """The local stack, brought up by the same script as `make run`."""
    subprocess.run([str(STACK), "up"], env=STACK_ENV, check=True, timeout=1200)
    yield
    subprocess.run([str(STACK), "down"], env=STACK_ENV, check=False, timeout=300)


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
        ports = {"SAHARA_API_PORT": str(port), "SAHARA_METRICS_PORT": str(free_port())}
        full_env = {**base_env, **ports, **{k: str(v) for k, v in env.items()}}
        name = f"{mode}-{len(started)}"
        serves = mode in SERVING_MODES
        if mode == "container":
            proc = start_container(name, full_env, tmp_path / f"{name}.log", tmp_path)
        else:
            proc = start(
                name,
                [PYTHON, str(LAUNCHER), mode],
                tmp_path / f"{name}.log",
                full_env,
                cls=Api if serves else Proc,
                **({"port": port, "environ": full_env} if serves else {}),
            )
        started.append(proc)
        if wait and isinstance(proc, Api):
            proc.wait_ready()
        return proc

    yield _launch
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def api(launch: Callable[..., Proc], api_mode: str) -> Api:
    """The API started in one mode of the matrix (see MODES)."""
    return launch(**MODES[api_mode])


@pytest.fixture
def launch_upstream(sahara_conf: Path, tmp_path: Path) -> Iterator[Callable[[int], Api]]:
    """launch_upstream(api_workers) starts Sahara's own `sahara-api` launcher
    (oslo.service ProcessLauncher: the parent serves too) on our paste pipeline."""
    started: list[Api] = []

    def _launch(workers: int) -> Api:
        port = free_port()
        extra = tmp_path / f"upstream-{len(started)}.conf"
        extra.write_text(
            f"[DEFAULT]\nport = {port}\nhost = 127.0.0.1\napi_workers = {workers}\n"
            f"api_paste_config = {ROOT / 'deploy' / 'api-paste.ini'}\n"
            f"[healthcheck]\ndisable_by_file_path = {tmp_path / 'drain'}\n"
        )
        argv = [str(Path(PYTHON).parent / "sahara-api"), "--config-file", str(sahara_conf), "--config-file", str(extra)]
        api = start(
            f"upstream-{len(started)}", argv, tmp_path / f"upstream-{len(started)}.log", dict(os.environ), cls=Api
        )
        api.port = port
        started.append(api)
        api.wait_ready()
        return api

    yield _launch
    for api in reversed(started):
        api.stop()


@pytest.fixture(params=["ours", "upstream"])
def server(request: pytest.FixtureRequest, launch: Callable[..., Proc], launch_upstream: Callable[[int], Api]):
    """server(workers): our uWSGI API or the upstream launcher, one test id each."""
    if request.param == "ours":
        return lambda workers: launch(SAHARA_API_WORKERS=workers)
    return launch_upstream


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
def make_cluster(sahara_conf: Path, project_id: str) -> Iterator[Callable[[], str]]:
    """A cluster row (Active, fake plugin) created through Sahara's conductor,
    destroyed the same way after the test."""
    base = [PYTHON, str(HERE / "make_cluster.py"), "--config-file", str(sahara_conf), "--project-id", project_id]
    made: list[str] = []

    def _make() -> str:
        out = subprocess.run(base, check=True, capture_output=True, text=True, timeout=60)
        made.append(out.stdout.strip().splitlines()[-1])
        return made[-1]

    yield _make
    if made:
        subprocess.run([*base, "--delete", *made], check=True, capture_output=True, timeout=60)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    """prometheus(rule_files, interval, targets) starts Debian's Prometheus (installed
    if missing) on loopback with its own port and data dir; stopped after the test."""
    started: list[Prometheus] = []

    def _start(rule_files: list[Path] = (), interval: float = 1, targets: tuple[str, ...] = ()) -> Prometheus:
        started.append(start_prometheus(tmp_path / f"prometheus-{len(started)}", list(rule_files), interval, targets))
        return started[-1]

    yield _start
    for prom in started:
        prom.stop()
