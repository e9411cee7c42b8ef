"""Fixtures that own real processes: API servers in every mode, upstream's
launcher, Prometheus. Every process runs in its own process group and is
killed with its group at teardown, whatever the test did (harness.procs).
The stack's fixtures are tests/conftest.py's."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.deploy import MODES, NoImage, ours_env, start_ours, start_upstream
from harness.procs import Api, Proc
from harness.prometheus import Prometheus, start_prometheus


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


@pytest.fixture
def base_env(sahara_conf: Path, tmp_path: Path) -> dict[str, str]:
    """Our launcher's environment: free ports, the drain file and run dir in tmp_path."""
    return ours_env(sahara_conf, tmp_path)


@pytest.fixture
def launch(sahara_conf: Path, tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """launch(mode, **env) starts `sahara_api_launcher.py mode`; API servers wait until ready."""
    started: list[Proc] = []

    def _launch(mode: str = "api", wait: bool = True, **env: str | int) -> Proc:
        try:
            proc = start_ours(mode, ours_env(sahara_conf, tmp_path, **env), tmp_path, f"{mode}-{len(started)}")
        except NoImage as e:
            pytest.skip(str(e))
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
        started.append(start_upstream(sahara_conf, workers, tmp_path, f"upstream-{len(started)}"))
        started[-1].wait_ready()
        return started[-1]

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
