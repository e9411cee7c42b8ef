"""The local stack (scripts/stack.sh) as the harness uses it: Debian
packages, the openrc credentials, Keystone sessions and projects."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from harness import ROOT


def ensure_packages(*names: str) -> None:
    """Install the Debian packages that are missing, as scripts/stack.sh does:
    dpkg-query first, apt-get only for what it does not find."""
    installed = "install ok installed"
    query = ["dpkg-query", "-W", "-f=${Status}"]
    missing = [n for n in names if subprocess.run([*query, n], capture_output=True, text=True).stdout != installed]
    if not missing:
        return
    apt = [*([] if os.geteuid() == 0 else ["sudo"]), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q"]
    subprocess.run([*apt, "update"], check=True, capture_output=True, timeout=600)
    subprocess.run(
        [*apt, "install", "-y", "--no-install-recommends", *missing], check=True, capture_output=True, timeout=900
    )


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
