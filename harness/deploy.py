"""Our deployment and upstream's, as the tests, the benchmark and the soak
start them: the launcher (every mode), the image under podman, Sahara's own
`sahara-api`. Every process in its own session (harness.procs.start)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from harness import ROOT
from harness.podman import IMAGE, RUN
from harness.procs import Api, start

PYTHON = sys.executable  # the .venv's python: the launcher execs its siblings
LAUNCHER = ROOT / "sahara_api_launcher.py"
# Launcher modes that serve the API over HTTP.
SERVING_MODES = ("api", "debug", "all-in-one", "container")

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


class NoImage(RuntimeError):
    """The image is not built here (make image; make test builds it)."""


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
        raise NoImage(f"no {IMAGE} image here: run `make image` (make test builds it)")
    shared = tmp_path / f"{name}-shared"  # readable by the image's uid, unlike tmp_path
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    knobs = {k: v for k, v in env.items() if k.startswith("SAHARA_") and k != "SAHARA_RUN_DIR"}
    knobs |= {"SAHARA_API_HOST": "127.0.0.1", "SAHARA_API_DRAIN_FILE": str(shared / "drain")}
    container = f"sahara-{name}-{uuid.uuid4().hex[:6]}"
    argv = [*RUN, "--name", container, "--read-only", "--tmpfs", "/tmp:rw,mode=1777"]
    argv += [a for f in [*knobs["SAHARA_CONFIG_FILES"].split(":"), str(shared)] for a in ("-v", f"{f}:{f}:ro")]
    argv += [a for k, v in knobs.items() for a in ("-e", f"{k}={v}")]
    proc = start(name, [*argv, IMAGE, "api"], log, dict(os.environ), cls=ContainerApi, container=container)
    proc.port, proc.environ = int(knobs["SAHARA_API_PORT"]), knobs
    return proc
