"""Run the sahara-api image with podman as `docker run` would (the same
arguments), on the host network so it reaches the local stack."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass

import psutil

from harness.procs import serves, tree, uwsgi_master_in

# SAHARA_IMAGE: test another tag (scripts/image.sh IMAGE=...) without touching :latest.
IMAGE = os.environ.get("SAHARA_IMAGE", "sahara-api:latest")
# runc: Debian's default crun fails on rlimits and cgroups here; explicit
# ulimits because the defaults are above what this sandbox may set.
PODMAN = ["podman", "--runtime", "runc"]
RUN = [*PODMAN, "run", "--network", "host", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
# Docker's meaning of --read-only: only what is mounted writable (podman would add tmpfs on /run, /var/tmp).
READ_ONLY = ["--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,mode=1777"]


def podman(*args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=check)


@dataclass
class Container:
    """A container a test started; the fixture removes it whatever happens."""

    name: str
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inspect(self) -> dict:
        return json.loads(podman("inspect", self.name, check=True).stdout)[0]

    def running(self) -> bool:
        return self.inspect()["State"]["Running"]

    def exit_code(self) -> int:
        return self.inspect()["State"]["ExitCode"]

    def logs(self) -> str:
        out = podman("logs", self.name)
        return out.stdout + out.stderr

    def exec(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return podman("exec", self.name, *argv, timeout=timeout)

    def kill(self, signal: str) -> None:
        podman("kill", "--signal", signal, self.name, check=True)

    def wait(self, timeout: float) -> int:
        """Exit code, once the container has stopped (raises TimeoutExpired)."""
        out = podman("wait", self.name, timeout=timeout, check=True)
        return int(out.stdout.strip())

    def processes(self) -> list[psutil.Process]:
        """PID 1 (tini) and everything under it, as host processes."""
        pid = self.inspect()["State"]["Pid"]
        if not pid:
            return []
        return tree(pid)

    def uwsgi_master(self) -> psutil.Process:
        """uWSGI's master, as a host process."""
        return uwsgi_master_in(self.processes())

    def uwsgi_workers(self) -> set[int]:
        """Host pids of the uWSGI workers (the master's uwsgi children, not its metrics exporter)."""
        return {c.pid for c in self.uwsgi_master().children() if c.name() == "uwsgi"}

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"{self.name} exited with {self.exit_code()}:\n{self.logs()[-3000:]}")
            if serves(f"{self.url}/healthcheck", timeout=5):  # or not listening yet, or a busy machine
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready in {timeout} s:\n{self.logs()[-3000:]}")
