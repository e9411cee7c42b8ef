"""Process and stack helpers shared by the integration tests (conftest.py)
and the benchmark (bench/): every process runs in its own session and
process group, and `Proc.stop` kills the whole group, whatever happened."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

ROOT = Path(__file__).resolve().parents[2]
# One line per request, as deploy/uwsgi.ini's log-format writes it.
REQUEST_LOG = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) (\S+)" (\d{3}) \d+B \d+ms worker=\d+ pid=(\d+) req=(\S+)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uwsgi_master(pid: int, timeout: float = 10) -> int:
    """The uWSGI master of a deployment whose launcher was `pid`: that process,
    or with the nginx front the only child of deploy/relay.sh, which the
    launcher execs in its place (docs/signals.md)."""
    deadline = time.monotonic() + timeout
    while True:
        root = psutil.Process(pid)
        if "relay.sh" not in " ".join(root.cmdline()):
            return pid
        # The relay's child is env, then setpriv, for a moment before it is uWSGI.
        children = [c for c in root.children() if c.name() == "uwsgi"]
        if children:
            return children[0].pid
        if time.monotonic() > deadline:
            raise RuntimeError(f"no uWSGI master under the relay {pid}")
        time.sleep(0.01)


def deployment_leftovers(sessions: set[int], run_dir: str = "", ports: set[int] = frozenset()) -> list[psutil.Process]:
    """Live processes of a deployment, whatever their session: those of
    `sessions`, and, since uWSGI's daemons (nginx, the metrics exporter) call
    setsid, every session with a process that names `run_dir` in its command
    line (nginx's master, the exporter) or listens on one of `ports` (an
    nginx worker whose master is gone). Never the caller's own session:
    deployments start in sessions of their own, and a socket the test itself
    holds on one of `ports` (a port-taken test) is not a leftover."""
    sessions, own = set(sessions), os.getsid(0)
    procs = []
    for p in psutil.process_iter():
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            sid = os.getsid(p.pid)
            procs.append((p, sid))
            if sid == own:
                continue
            if run_dir and any(run_dir + "/" in arg for arg in p.cmdline()):
                sessions.add(sid)
            elif ports and any(c.laddr.port in ports for c in p.connections("inet") if c.status == psutil.CONN_LISTEN):
                sessions.add(sid)
        except (OSError, psutil.Error):
            pass
    return [p for p, sid in procs if sid in sessions and p.is_running()]


@dataclass
class Proc:
    """A process group started by a test; `stop` always leaves nothing behind."""

    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def send(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def leftovers(self) -> list[psutil.Process]:
        """Processes still alive in this process's session (it is their leader)."""
        return deployment_leftovers({self.pid})

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Signal the leader, then SIGKILL the whole group if it lingers."""
        rc = self.popen.poll()
        if rc is None:
            try:
                self.send(sig)
                rc = self.popen.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                rc = None
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if rc is None:
            rc = self.popen.wait(timeout=10)
        return rc


@dataclass
class Api(Proc):
    port: int = 0
    environ: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def leftovers(self) -> list[psutil.Process]:
        """Every process this API started that is still alive, whatever its session."""
        run_dir = self.environ.get("SAHARA_RUN_DIR", "")
        metrics = self.environ.get("SAHARA_METRICS_PORT", "")
        ports = {self.port, int(metrics) if metrics.isdigit() else 0} - {0}  # a bad value names no port
        return deployment_leftovers({self.pid}, run_dir.rstrip("/"), ports)

    @property
    def master(self) -> int:
        """uWSGI's master (pid is the launcher's: with the nginx front, deploy/relay.sh)."""
        return uwsgi_master(self.pid)

    def worker_pids(self) -> set[int]:
        """The master's children that run its program: not the metrics exporter or
        nginx it also runs, nor a fork of the master about to exec one of them
        (uWSGI's daemon children call setsid first, then may wait out a respawn
        throttle before their exec)."""
        master = psutil.Process(self.master)
        pids = set()
        for child in master.children():
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                if child.name() == master.name() and os.getsid(child.pid) == os.getsid(master.pid):
                    pids.add(child.pid)
        return pids

    def served_by(self) -> list[tuple[int, str, str]]:
        """(worker pid, method, path) of every request in uWSGI's request log."""
        return [(int(m[4]), m[1], m[2]) for m in REQUEST_LOG.finditer(self.log_text())]

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/healthcheck", timeout=2).status_code == 200:
                    return
            # uWSGI listens before its workers are up: on a busy machine the
            # first probe waits in the backlog longer than its timeout.
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready in {timeout} s:\n{self.log_text()[-3000:]}")


def start(name: str, argv: list[str], log: Path, env: dict[str, str], cls: type[Proc] = Proc, **extra) -> Proc:
    out = log.open("wb")
    popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=ROOT)
    out.close()
    return cls(name=name, popen=popen, log=log, **extra)


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


@dataclass
class Prometheus(Proc):
    """Debian's Prometheus on loopback, scraping the `sahara-api` job's
    targets from a file_sd file that `scrape()` rewrites (seen within ~5 s)."""

    port: int = 0
    sd_file: Path = Path()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def scrape(self, *exporters: str) -> None:
        """Scrape exactly these host:port exporters from now on."""
        tmp = self.sd_file.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": list(exporters)}]))
        tmp.rename(self.sd_file)  # atomic: Prometheus never reads half a file

    def api(self, path: str, **params: str) -> dict:
        r = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        r.raise_for_status()
        return r.json()["data"]

    def query(self, promql: str) -> list[dict]:
        return self.api("query", query=promql)["result"]

    def alerts(self) -> dict[str, str]:
        """Alert name -> `pending` or `firing` (firing if any of its series fires)."""
        states: dict[str, str] = {}
        for a in self.api("alerts")["alerts"]:
            name = a["labels"]["alertname"]
            states[name] = "firing" if "firing" in (a["state"], states.get(name)) else a["state"]
        return states

    def wait(self, promql: str, timeout: float = 30) -> list[dict]:
        """The query's result once it is not empty."""
        deadline = time.monotonic() + timeout
        while not (result := self.query(promql)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{promql} stayed empty for {timeout} s")
            time.sleep(0.2)
        return result


def start_prometheus(
    workdir: Path, rule_files: list[Path] = (), interval: float = 1, targets: tuple[str, ...] = ()
) -> Prometheus:
    """A Prometheus of its own: loopback, a free port, its data in workdir,
    scrapes and rule evaluations every `interval` seconds (15 s/1 m in production)."""
    ensure_packages("prometheus")  # brings promtool too
    workdir.mkdir(parents=True, exist_ok=True)
    port, sd_file = free_port(), workdir / "targets.json"
    every = f"{int(interval * 1000)}ms"
    config = {
        "global": {"scrape_interval": every, "evaluation_interval": every, "scrape_timeout": every},
        "rule_files": [str(f) for f in rule_files],
        "scrape_configs": [{"job_name": "sahara-api", "file_sd_configs": [{"files": [str(sd_file)]}]}],
    }
    (workdir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    argv = ["prometheus", f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}"]
    argv += [f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    sd_file.write_text(json.dumps([{"targets": list(targets)}]))
    prom = start("prometheus", argv, workdir / "prometheus.log", dict(os.environ), cls=Prometheus, port=port)
    prom.sd_file = sd_file
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{prom.url}/-/ready", timeout=2).status_code == 200:
                return prom
        except requests.RequestException:
            pass
        if prom.popen.poll() is not None or time.monotonic() > deadline:
            prom.stop()
            raise RuntimeError(f"Prometheus did not start:\n{prom.log_text()[-3000:]}")
        time.sleep(0.1)


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
