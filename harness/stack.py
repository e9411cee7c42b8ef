"""The local stack (scripts/stack.sh) as the harness uses it: its lifecycle
(up, a RabbitMQ vhost with a sahara.conf on it, down), Debian packages, the
openrc credentials, Keystone sessions and projects."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from harness import ROOT

STACK = ROOT / "scripts" / "stack.sh"
SAHARA_CONF = ROOT / "etc" / "sahara" / "sahara.conf"


class Stack:
    """scripts/stack.sh for one kind of run (tests, bench, soak): `up` reuses
    running services and lists what it started in a list of the run's own
    (STACK_STARTED), so `down` stops only that, never what `make run` or
    another run started."""

    def __init__(self, who: str) -> None:
        # The run holds the services it uses while this process lives (the
        # tests: their controller's, set in conftest.py), so another run's
        # `down` leaves them running.
        holder = os.environ.get("STACK_HOLDER", str(os.getpid()))
        self.env = {**os.environ, "STACK_STARTED": str(ROOT / ".stack" / f"started.{who}"), "STACK_HOLDER": holder}

    def _run(self, *args: str, check: bool = True, timeout: float = 120, quiet: bool = False) -> None:
        out = subprocess.DEVNULL if quiet else None
        subprocess.run([str(STACK), *args], env=self.env, check=check, timeout=timeout, stdout=out)

    def up(self, quiet: bool = False) -> None:
        """Install what is missing, start what is not running (stack.sh's lines unless quiet)."""
        self._run("up", timeout=1200, quiet=quiet)

    def down(self) -> None:
        self._run("down", check=False, timeout=300)

    @contextlib.contextmanager
    def running(self, quiet: bool = False) -> Iterator[Stack]:
        """Up, then down at the end, also when up failed halfway."""
        try:
            self.up(quiet)
            yield self
        finally:
            self.down()

    @contextlib.contextmanager
    def vhost(self, prefix: str, etc_dir: Path) -> Iterator[Path]:
        """A RabbitMQ vhost of this run's own (no other engine answers its RPCs) and
        the dev sahara.conf on it, written into etc_dir; the vhost is deleted at the end."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self._run("vhost", "add", name)
        try:
            conf = etc_dir / "sahara.conf"
            conf.write_text(SAHARA_CONF.read_text().replace("@127.0.0.1:5672/", f"@127.0.0.1:5672/{name}"))
            yield conf
        finally:
            self._run("vhost", "del", name, check=False)


def ensure_packages(*names: str) -> None:
    """Install the Debian packages that are missing (scripts/stack.sh packages)."""
    out = subprocess.run([str(STACK), "packages", *names], capture_output=True, text=True, timeout=1300)
    if out.returncode != 0:
        raise RuntimeError(f"cannot install {' '.join(names)}:\n{out.stdout}{out.stderr}")


def read_openrc(path: Path = ROOT / "openrc") -> dict[str, str]:
    """The OS_* variables scripts/stack.sh wrote for the dev stack's admin."""
    return dict(re.findall(r"^export (\w+)=(.*)$", path.read_text(), re.M))


def keystone_session(openrc: dict[str, str], project_name: str | None = None) -> ks_session.Session:
    """A session as the openrc user, scoped to its project or to `project_name`."""
    auth = v3.Password(
        auth_url=openrc["OS_AUTH_URL"],
        username=openrc["OS_USERNAME"],
        password=openrc["OS_PASSWORD"],
        project_name=project_name or openrc["OS_PROJECT_NAME"],
        user_domain_name=openrc["OS_USER_DOMAIN_NAME"],
        project_domain_name=openrc["OS_PROJECT_DOMAIN_NAME"],
    )
    return ks_session.Session(auth=auth)


def ensure_project(openrc: dict[str, str], name: str, description: str) -> str:
    """A Keystone project of `name` (made if missing), with the openrc user as its admin."""
    admin = keystone_session(openrc)
    base = openrc["OS_AUTH_URL"].rstrip("/")
    found = admin.get(f"{base}/projects", params={"name": name}).json()["projects"]
    if found:
        project_id = found[0]["id"]
    else:
        body = {"project": {"name": name, "domain_id": "default", "description": description}}
        project_id = admin.post(f"{base}/projects", json=body).json()["project"]["id"]
    role_id = admin.get(f"{base}/roles", params={"name": "admin"}).json()["roles"][0]["id"]
    admin.put(f"{base}/projects/{project_id}/users/{admin.get_user_id()}/roles/{role_id}")
    return project_id
