"""Our deployment and upstream's, as the tests, the benchmark and the soak
start them: the launcher (every mode), the image under podman, Sahara's own
`sahara-api`, `make run` as a user types it. Every process in its own
session (harness.procs.start)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

import sahara_api_launcher as launcher
from harness import ROOT
from harness.podman import IMAGE, RUN
from harness.procs import Api, Proc, alive, free_port, port_of, session_pids, start

PYTHON = sys.executable  # the .venv's python: the launcher execs its siblings
BIN = Path(PYTHON).parent
LAUNCHER = ROOT / "sahara_api_launcher.py"
PASTE = ROOT / "deploy" / "api-paste.ini"
SUPERVISORD_CONF = ROOT / "deploy" / "supervisord.conf"
# Launcher modes that serve the API over HTTP, and the image (run in api mode).
SERVING_MODES = (*launcher.SERVING_MODES, "container")

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


def clean_env() -> dict[str, str]:
    """This environment without the knobs of whoever started us: SAHARA_* and
    UWSGI_* (uWSGI reads UWSGI_<OPTION> as options)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SAHARA_", "UWSGI_"))}


def ours_env(conf: Path | str, workdir: Path, **knobs: str | int) -> dict[str, str]:
    """The environment our launcher runs with: clean_env(), the config files, free
    ports for the API and the metrics exporter, the drain file and run dir in
    workdir, the venv; then `knobs` (SAHARA_CONFIG_FILES may be a colon list)."""
    return {
        **clean_env(),
        "SAHARA_CONFIG_FILES": str(conf),
        "SAHARA_API_PORT": str(free_port()),
        "SAHARA_METRICS_PORT": str(free_port()),
        "SAHARA_API_DRAIN_FILE": str(workdir / "drain"),
        "SAHARA_RUN_DIR": str(workdir),
        "VIRTUAL_ENV": str(BIN.parent),
        **{k: str(v) for k, v in knobs.items()},
    }


def start_ours(mode: str, env: dict[str, str], workdir: Path, name: str, cls: type[Api] = Api) -> Proc:
    """`sahara_api_launcher.py mode` with env (ours_env), its output in workdir/name.log:
    an Api (or `cls`) for the modes that serve, the image under podman for
    `container` (NoImage if it is not built), a plain Proc for the others."""
    log = workdir / f"{name}.log"
    if mode == "container":
        return start_container(name, env, log, workdir)
    argv = [PYTHON, str(LAUNCHER), mode]
    if mode not in SERVING_MODES:
        return start(name, argv, log, env)
    return start(name, argv, log, env, cls=cls, port=port_of(env["SAHARA_API_PORT"]), environ=env)


def start_upstream(conf: Path, workers: int, workdir: Path, name: str) -> Api:
    """Sahara's own `sahara-api` launcher (oslo.service ProcessLauncher: the parent
    serves too) with api_workers=workers on a free port, on our paste pipeline."""
    port = free_port()
    extra = workdir / f"{name}.conf"
    extra.write_text(
        f"[DEFAULT]\nhost = 127.0.0.1\nport = {port}\napi_workers = {workers}\n"
        "# Same pipeline as ours: /healthcheck outside auth, keystonemiddleware + memcached.\n"
        f"api_paste_config = {PASTE}\n"
        f"[healthcheck]\ndisable_by_file_path = {workdir / 'drain'}\n"
    )
    argv = [str(BIN / "sahara-api"), "--config-file", str(conf), "--config-file", str(extra)]
    env = clean_env()
    return start(name, argv, workdir / f"{name}.log", env, cls=Api, port=port, environ=env)


class AllInOne(Api):
    """`sahara_api_launcher.py all-in-one`: supervisord running the uWSGI API and
    sahara-engine (deploy/supervisord.conf), as `make run` runs them."""

    def ctl(self, *args: str) -> str:
        argv = [str(BIN / "supervisorctl"), "-c", str(SUPERVISORD_CONF), *args]
        return subprocess.run(argv, env=self.environ, capture_output=True, text=True, timeout=30).stdout

    def states(self) -> dict[str, str]:
        """{program: state} as `supervisorctl status` lists them."""
        return {w[0]: w[1] for w in map(str.split, self.ctl("status").splitlines()) if len(w) > 1}

    def program_pid(self, name: str) -> int:
        """The pid of a RUNNING program (never 0: a test signals it)."""
        for line in self.ctl("status", name).splitlines():
            words = line.split()
            if words[:2] == [name, "RUNNING"]:
                return int(words[3].rstrip(","))
        raise RuntimeError(f"{name} is not RUNNING: {self.ctl('status', name).strip()}")


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


def require_image() -> None:
    """NoImage unless the image is built here."""
    if subprocess.run(["podman", "image", "exists", IMAGE], **QUIET).returncode != 0:
        raise NoImage(f"no {IMAGE} image here: run `make image` (make test builds it)")


def run_image(name: str, knobs: dict[str, str], volumes: list[str], log: Path) -> ContainerApi:
    """`podman run` (attached) of the image in api mode, read-only, as the image's
    own uid, with the SAHARA_* `knobs` and the `volumes` (podman's -v)."""
    require_image()
    container = f"sahara-{name}-{uuid.uuid4().hex[:6]}"
    argv = [*RUN, "--name", container, "--read-only", "--tmpfs", "/tmp:rw,mode=1777"]
    argv += [a for v in volumes for a in ("-v", v)]
    argv += [a for k, v in knobs.items() for a in ("-e", f"{k}={v}")]
    port = port_of(knobs.get("SAHARA_API_PORT"))
    return start(
        name, [*argv, IMAGE, "api"], log, clean_env(), cls=ContainerApi, container=container, port=port, environ=knobs
    )


def start_container(name: str, env: dict[str, str], log: Path, tmp_path: Path) -> ContainerApi:
    """The image with the SAHARA_* knobs of env (ours_env): the config files
    and a directory for the drain file are mounted read-only at the same paths."""
    require_image()
    shared = tmp_path / f"{name}-shared"  # readable by the image's uid, unlike tmp_path
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    knobs = {k: v for k, v in env.items() if k.startswith("SAHARA_") and k != "SAHARA_RUN_DIR"}
    knobs.setdefault("SAHARA_API_HOST", "127.0.0.1")
    knobs["SAHARA_API_DRAIN_FILE"] = str(shared / "drain")
    volumes = [f"{f}:{f}:ro" for f in [*knobs["SAHARA_CONFIG_FILES"].split(":"), str(shared)]]
    return run_image(name, knobs, volumes, log)


# -- `make run`, as a user types it -------------------------------------------


@dataclass
class MakeRun:
    """A `make run` started by start_make_run; kill_make_run leaves nothing of it."""

    popen: subprocess.Popen
    log: Path
    run_dir: Path
    started: Path
    port: int
    metrics_port: int
    host: str = "127.0.0.1"
    owned: set[int] = field(default_factory=set)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def supervisord(self) -> int:
        return int((self.run_dir / "supervisord.pid").read_text())

    @property
    def memcached(self) -> int:
        return int((self.started.parent / "memcached.pid").read_text())

    def deployment(self) -> set[int]:
        """supervisord, everything under it (uWSGI's metrics exporter runs in a
        session of its own) and everything in its session."""
        pids = {self.supervisord} | session_pids(self.supervisord)
        for pid in list(pids):
            try:
                pids |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
            except psutil.NoSuchProcess:
                pass
        return pids

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while "success: sahara-engine entered RUNNING state" not in self.log_text():
            assert self.popen.poll() is None, f"make run exited:\n{self.log_text()[-3000:]}"
            assert time.monotonic() < deadline, f"make run not ready:\n{self.log_text()[-3000:]}"
            time.sleep(0.2)
        while True:
            try:  # a busy machine may keep the first probes in the listen queue for long
                if requests.get(f"{self.url}/healthcheck", timeout=10).status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"make run not serving:\n{self.log_text()[-3000:]}"
            time.sleep(0.2)


def terminal_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def start_make_run(tmp_path: Path, sahara_conf: Path, **knobs: str | int | Path) -> MakeRun:
    """`make run` as a user types it, `VAR=x make run`: the knobs in make's
    environment (they win over deploy/defaults.env), on ports, a run dir and a
    memcached of its own."""
    memcached_port, started = free_port(), tmp_path / "started"
    knobs = {
        "SAHARA_API_PORT": free_port(),
        "SAHARA_METRICS_PORT": free_port(),
        "SAHARA_RUN_DIR": tmp_path / "run",
        "SAHARA_CONFIG_FILES": sahara_conf,
        "SAHARA_API_DRAIN_FILE": tmp_path / "drain",
        "SAHARA_API_WORKERS": 2,
        **knobs,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAHARA_", "MAKE", "MFLAGS"))}
    env |= {k: str(v) for k, v in knobs.items()}
    env |= {"STACK_STARTED": str(started), "STACK_MEMCACHED_PORT": str(memcached_port)}
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            start_new_session=True,  # make leads its process group, as in a terminal
            # and gets a terminal's dispositions, however the tests were started (a
            # background job of a script ignores INT and QUIT, and bash cannot trap them).
            preexec_fn=terminal_signals,
        )
    return MakeRun(
        popen,
        log,
        Path(knobs["SAHARA_RUN_DIR"]),
        started,
        port_of(knobs["SAHARA_API_PORT"]),
        port_of(knobs["SAHARA_METRICS_PORT"]),
        str(knobs.get("SAHARA_API_HOST", "127.0.0.1")),
    )


def kill_make_run(run: MakeRun) -> None:
    """Whatever happened: kill what the run started, by the pids it owns
    (and, if it failed before recording them, what its pidfiles name)."""
    pidfiles = {"supervisord": run.run_dir / "supervisord.pid", "memcached": run.started.parent / "memcached.pid"}
    for name, pidfile in pidfiles.items():
        try:
            pid = int(pidfile.read_text())
            if name in " ".join(psutil.Process(pid).cmdline()):
                run.owned |= {pid} | session_pids(pid)
        except (OSError, ValueError, psutil.Error):
            pass
    sessions = set()
    for pid in run.owned:  # make's own session, supervisord's, memcached's (setsid each), never ours
        with contextlib.suppress(ProcessLookupError):
            sessions.add(os.getsid(pid))
    sessions.discard(os.getsid(0))
    for _ in range(10):  # again until a walk finds nothing alive: a fork made meanwhile joins its session
        for pid in list(run.owned):
            try:
                run.owned |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
            except psutil.NoSuchProcess:
                pass
        run.owned |= {p for sid in sessions for p in session_pids(sid)}
        living = [pid for pid in run.owned if alive(pid)]
        if not living:
            break
        for pid in living:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    try:
        os.killpg(run.popen.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    run.popen.wait(timeout=30)
