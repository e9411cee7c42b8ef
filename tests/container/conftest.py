"""Fixtures of the container tests: the image (built by scripts/image.sh,
cached) and containers that are always removed; the stack's fixtures are
tests/conftest.py's (the same stack, a RabbitMQ vhost of this run's own)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import ROOT
from harness.podman import IMAGE, READ_ONLY, RUN, Container, podman
from harness.procs import free_port
from harness.stack import Stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.fspath).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.container)


@pytest.fixture(scope="session")
def image() -> str:
    """The image built from this checkout (scripts/image.sh: cached layers, ~10 s when warm)."""
    # One build at a time when several pytest workers (-n) reach this at once.
    with (Path(os.environ["SAHARA_TESTS_SHARED_DIR"]) / "image.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        argv = [str(ROOT / "scripts" / "image.sh")]
        build = subprocess.run(argv, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    if build.returncode != 0:
        info = podman("info", timeout=60) if _have_podman() else None
        if info is None or info.returncode != 0:
            reason = "not installed" if info is None else info.stderr.strip().splitlines()[-1]
            pytest.skip(f"podman cannot work on this machine ({reason})")
        pytest.fail(f"image build failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}")
    probe = subprocess.run([*RUN, "--rm", "--entrypoint", "true", IMAGE], capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run containers on this machine: {probe.stderr.strip()[-300:]}")
    return IMAGE


def _have_podman() -> bool:
    try:
        return subprocess.run(["podman", "--version"], capture_output=True, timeout=30).returncode == 0
    except FileNotFoundError:
        return False


@pytest.fixture
def run_container(image: str, stack: Stack) -> Iterator[Callable[..., Container]]:
    """run_container(*command, env=, options=, read_only=True, wait=True): `podman run -d`
    of the image; an API container listens on a free port and is waited for."""
    started: list[Container] = []

    def _run(
        *command: str,
        env: dict[str, str] | None = None,
        options: list[str] | tuple[str, ...] = (),
        read_only: bool = True,
        wait: bool = True,
        api: bool = True,
    ) -> Container:
        port = free_port() if api else 0
        container = Container(name=f"sahara-test-{uuid.uuid4().hex[:8]}", port=port)
        started.append(container)
        # Host network: the metrics port too must be free (the image's 9386 may be taken).
        ports = {"SAHARA_API_PORT": str(port), "SAHARA_METRICS_PORT": str(free_port())} if api else {}
        full_env = {"SAHARA_API_HOST": "127.0.0.1", **ports, **(env or {})}
        argv = [*RUN, "-d", "--name", container.name, *(READ_ONLY if read_only else [])]
        argv += [a for k, v in full_env.items() for a in ("-e", f"{k}={v}")]
        argv += [*options, image, *command]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        if wait and api:
            container.wait_ready()
        return container

    yield _run
    for container in started:
        podman("rm", "-f", "-t", "0", container.name, timeout=60)


@pytest.fixture
def mounted_conf(sahara_conf: Path, tmp_path: Path) -> list[str]:
    """The dev sahara.conf mounted read-only over /etc/sahara, readable by any uid."""
    etc = tmp_path / "etc-sahara"
    etc.mkdir()
    (etc / "sahara.conf").write_text(sahara_conf.read_text())
    etc.chmod(0o755)
    (etc / "sahara.conf").chmod(0o644)
    return ["-v", f"{etc}:/etc/sahara:ro"]
