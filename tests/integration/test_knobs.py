"""Every knob of deploy/defaults.env, set in the environment, reaches the
running deployment in each path a user takes: `VAR=x make run`, `podman run
-e VAR=x` of the image, and the chart's pod (values to env); and a bad value
gets the same one-line error in each. One deployment per path and
configuration with every knob changed at once; each knob is then looked for
where it lands: uWSGI's stats socket (workers, threads, elastic), the
deployment's processes (nginx or not), the addresses that answer (host,
port, metrics, HTTPS), the drain file, a body over the limit, and for the
rest the uWSGI master's environment (what deploy/uwsgi.ini reads).

The tables below name every knob: a new one fails
test_every_knob_is_in_the_tables until it says where it lands."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests
import urllib3
import yaml

from harness.chart import CHART, find, helm, render
from harness.deploy import ContainerApi, NoImage, kill_make_run, require_image, run_image, start_make_run
from harness.procs import free_port, tree, uwsgi_master_in, uwsgi_stats
from harness.troubleshooting import assert_documented
from sahara_api_knobs import defaults, knob_table, write_chart_files

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # self-signed, on purpose
MIB = 1024 * 1024
# The container's own run dir: its /tmp is a tmpfs (--read-only).
CONTAINER_RUN_DIR = "/tmp/knob-run"


@dataclass
class Deployment:
    """One running deployment as the host sees it."""

    knobs: dict[str, str]  # the environment it was started with
    processes: Callable[[], list[psutil.Process]]  # all of it
    root: Path  # its filesystem: / on the host, /proc/<pid>/root in a container

    @property
    def tls(self) -> bool:
        return bool(self.knobs.get("SAHARA_API_TLS_CERT"))

    def get(self, path: str, host: str | None = None) -> requests.Response:
        scheme = "https" if self.tls else "http"
        host = host or self.knobs["SAHARA_API_HOST"]
        return requests.get(f"{scheme}://{host}:{self.knobs['SAHARA_API_PORT']}{path}", verify=False, timeout=10)

    def master(self) -> psutil.Process:
        return uwsgi_master_in(self.processes())

    def environ(self, knob: str) -> str:
        return self.master().environ()[knob]

    def stats(self) -> dict:
        return uwsgi_stats(self.root / self.knobs["SAHARA_RUN_DIR"].lstrip("/"))

    def wait_serving(self, alive: Callable[[], bool], log: Callable[[], str], timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.get("/healthcheck").status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert alive() and time.monotonic() < deadline, f"not serving:\n{log()[-3000:]}"
            time.sleep(0.3)


def served_at(d: Deployment, knob: str) -> str:
    """The host and the port answer; 127.0.0.1 on that port does not."""
    assert d.get("/healthcheck").status_code == 200
    with pytest.raises(requests.ConnectionError):
        d.get("/healthcheck", host="127.0.0.1")
    return d.knobs[knob]


def drained(d: Deployment) -> str:
    """The drain file, created from the host, turns /healthcheck to 503."""
    drain = d.root / d.knobs["SAHARA_API_DRAIN_FILE"].lstrip("/")
    drain.touch()
    try:
        return d.knobs["SAHARA_API_DRAIN_FILE"] if d.get("/healthcheck").status_code == 503 else "not drained"
    finally:
        drain.unlink()


def body_limit(d: Deployment) -> str:
    """A body 1 MiB over the limit is refused (413) from its Content-Length alone."""
    limit = int(d.knobs["SAHARA_API_MAX_BODY_MB"])
    with socket.create_connection((d.knobs["SAHARA_API_HOST"], int(d.knobs["SAHARA_API_PORT"])), timeout=10) as raw:
        s = ssl._create_unverified_context().wrap_socket(raw) if d.tls else raw
        head = f"POST /v2/job-binaries HTTP/1.1\r\nHost: x\r\nContent-Length: {(limit + 1) * MIB}\r\n\r\n"
        s.sendall(head.encode())
        status = int(s.recv(100).split()[1])
    return str(limit) if status == 413 else f"HTTP {status}"


def elastic(d: Deployment) -> str:
    """uWSGI's cheaper subsystem parks idle workers: their status is "cheap"."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(w["status"] == "cheap" for w in d.stats()["workers"]):
            return "1"
        time.sleep(0.5)
    return "0"


def metrics_at(d: Deployment, knob: str) -> str:
    url = f"http://{d.knobs['SAHARA_METRICS_HOST']}:{d.knobs['SAHARA_METRICS_PORT']}/metrics"
    return d.knobs[knob] if requests.get(url, timeout=10).status_code == 200 else "no metrics"


def over_https(d: Deployment, knob: str) -> str:
    return d.knobs[knob] if d.get("/healthcheck").url.startswith("https") and d.get("/healthcheck").ok else "no TLS"


# Where each knob lands in a running deployment: the value found there.
LANDS: dict[str, Callable[[Deployment], str]] = {
    "SAHARA_API_HOST": lambda d: served_at(d, "SAHARA_API_HOST"),
    "SAHARA_API_PORT": lambda d: served_at(d, "SAHARA_API_PORT"),
    "SAHARA_CONFIG_FILES": lambda d: d.environ("SAHARA_CONFIG_FILES"),  # and it serves with them
    "SAHARA_API_WORKERS": lambda d: str(len(d.stats()["workers"])),
    "SAHARA_API_THREADS": lambda d: str({len(w["cores"]) for w in d.stats()["workers"]}.pop()),
    "SAHARA_API_CPU_SLOTS": lambda d: d.environ("SAHARA_API_CPU_SLOTS"),
    "SAHARA_API_ELASTIC": elastic,
    "SAHARA_API_DRAIN_FILE": drained,
    "SAHARA_RUN_DIR": lambda d: d.knobs["SAHARA_RUN_DIR"] if "workers" in d.stats() else "",
    "SAHARA_API_TIMEOUT": lambda d: d.environ("SAHARA_API_TIMEOUT"),
    "SAHARA_API_STOP_TIMEOUT": lambda d: d.environ("SAHARA_API_STOP_TIMEOUT"),
    # supervisord's engine stopwaitsecs reads it (tests/chart: test_engine_stop_grace_is_one_value)
    "SAHARA_ENGINE_STOP_TIMEOUT": lambda d: d.environ("SAHARA_ENGINE_STOP_TIMEOUT"),
    "SAHARA_API_MAX_REQUESTS": lambda d: d.environ("SAHARA_API_MAX_REQUESTS"),
    "SAHARA_API_MAX_RSS_MB": lambda d: d.environ("SAHARA_API_MAX_RSS_MB"),
    "SAHARA_API_MAX_BODY_MB": body_limit,
    "SAHARA_API_FRONT": lambda d: "nginx" if any(p.name() == "nginx" for p in d.processes()) else "direct",
    "SAHARA_API_TLS_CERT": lambda d: over_https(d, "SAHARA_API_TLS_CERT"),
    "SAHARA_API_TLS_KEY": lambda d: over_https(d, "SAHARA_API_TLS_KEY"),
    "SAHARA_METRICS_HOST": lambda d: metrics_at(d, "SAHARA_METRICS_HOST"),
    "SAHARA_METRICS_PORT": lambda d: metrics_at(d, "SAHARA_METRICS_PORT"),
}

# A bad value of each knob and the start of the line every path prints for
# it; None: any value is tried as is (an address, a path) and a wrong one
# fails when the service binds or writes it.
BAD: dict[str, tuple[str, str] | None] = {
    "SAHARA_API_HOST": None,
    "SAHARA_API_PORT": ("http", "SAHARA_API_PORT='http' is not an integer"),
    "SAHARA_CONFIG_FILES": ("/nonexistent/sahara.conf", "config file /nonexistent/sahara.conf is missing"),
    "SAHARA_API_WORKERS": ("0", "SAHARA_API_WORKERS=0 means one process with green threads"),
    "SAHARA_API_THREADS": ("0", "SAHARA_API_THREADS=0 is out of range"),
    "SAHARA_API_CPU_SLOTS": ("-1", "SAHARA_API_CPU_SLOTS=-1 is out of range"),
    "SAHARA_API_ELASTIC": ("yes", "SAHARA_API_ELASTIC='yes': set 0"),
    "SAHARA_API_DRAIN_FILE": None,
    "SAHARA_RUN_DIR": None,
    "SAHARA_API_TIMEOUT": ("0", "SAHARA_API_TIMEOUT=0 is out of range"),
    "SAHARA_API_STOP_TIMEOUT": ("90", "SAHARA_API_STOP_TIMEOUT must be above SAHARA_API_TIMEOUT"),
    "SAHARA_ENGINE_STOP_TIMEOUT": ("0", "SAHARA_ENGINE_STOP_TIMEOUT=0 is out of range"),
    "SAHARA_API_MAX_REQUESTS": ("0", "SAHARA_API_MAX_REQUESTS=0 is out of range"),
    "SAHARA_API_MAX_RSS_MB": ("big", "SAHARA_API_MAX_RSS_MB='big' is not an integer"),
    "SAHARA_API_MAX_BODY_MB": ("4", "SAHARA_API_MAX_BODY_MB=4 is below [DEFAULT] job_binary_max_KB=5120"),
    "SAHARA_API_FRONT": ("proxy", "SAHARA_API_FRONT='proxy': set nginx or direct"),
    "SAHARA_API_TLS_CERT": ("/nonexistent/api.pem", "SAHARA_API_TLS_CERT and SAHARA_API_TLS_KEY go together"),
    "SAHARA_API_TLS_KEY": ("/nonexistent/api.key", "SAHARA_API_TLS_CERT and SAHARA_API_TLS_KEY go together"),
    "SAHARA_METRICS_HOST": None,
    "SAHARA_METRICS_PORT": ("metrics", "SAHARA_METRICS_PORT='metrics' is not an integer"),
}

# The chart's value for each knob, or who sets it: deploy/defaults.env's `#@` lines.
CHART_VALUES = {k.name: k.chart for k in knob_table() if k.chart}
# Set by the chart itself: the pod IP for metrics (the ClusterIP Service's
# target), the mounted TLS Secret's files (api.tls).
CHART_SETS = {k.name for k in knob_table() if k.set_by == "chart"}
# Set by the image for containers (deploy/Dockerfile's ENV); extraEnv overrides.
IMAGE_SETS = {k.name for k in knob_table() if k.set_by == "image"}


def test_every_knob_is_in_the_tables() -> None:
    knobs = set(defaults())
    assert set(LANDS) == knobs and set(BAD) == knobs
    assert set(CHART_VALUES) | CHART_SETS | IMAGE_SETS == knobs


@pytest.fixture
def shared(sahara_conf: Path, tmp_path: Path) -> Path:
    """Files both the host and the image's uid read: the config, a drain
    dir, a self-signed certificate; mounted into containers at the same path."""
    shared = tmp_path / "shared"
    (shared / "drain").mkdir(parents=True)
    (shared / "knobs.conf").write_text(sahara_conf.read_text())
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-keyout", str(shared / "api.key"), "-out", str(shared / "api.crt")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    for path in [shared, *shared.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    tmp_path.chmod(0o755)  # the image's uid walks to shared/
    return shared


def configurations(shared: Path) -> dict[str, dict[str, str]]:
    """Every knob away from its default, in two runs: TLS needs the nginx front."""
    base = {
        "SAHARA_API_PORT": str(free_port()),
        "SAHARA_CONFIG_FILES": str(shared / "knobs.conf"),
        "SAHARA_API_DRAIN_FILE": str(shared / "drain" / "now"),
        "SAHARA_METRICS_PORT": str(free_port()),
    }
    return {
        "direct": {
            **base,
            "SAHARA_API_HOST": "127.0.0.2",
            "SAHARA_API_WORKERS": "3",
            "SAHARA_API_THREADS": "8",
            "SAHARA_API_CPU_SLOTS": "2",
            "SAHARA_API_ELASTIC": "1",
            "SAHARA_API_TIMEOUT": "30",
            "SAHARA_API_STOP_TIMEOUT": "40",
            "SAHARA_ENGINE_STOP_TIMEOUT": "70",
            "SAHARA_API_MAX_REQUESTS": "500",
            "SAHARA_API_MAX_RSS_MB": "400",
            "SAHARA_API_MAX_BODY_MB": "6",
            "SAHARA_API_FRONT": "direct",
            "SAHARA_METRICS_HOST": "127.0.0.3",
        },
        "tls": {
            **base,
            "SAHARA_API_HOST": "127.0.0.1",
            "SAHARA_API_WORKERS": "2",
            "SAHARA_API_FRONT": "nginx",
            "SAHARA_API_TLS_CERT": str(shared / "api.crt"),
            "SAHARA_API_TLS_KEY": str(shared / "api.key"),
        },
    }


CHANGED = {"direct": set(LANDS) - {"SAHARA_API_TLS_CERT", "SAHARA_API_TLS_KEY"}}
CHANGED["tls"] = {"SAHARA_API_TLS_CERT", "SAHARA_API_TLS_KEY"}


def assert_landed(d: Deployment, config: str, path: str) -> None:
    found = {knob: LANDS[knob](d) for knob in sorted(CHANGED[config])}
    for knob, value in found.items():
        print(f"  {path} {config}: {knob}={d.knobs[knob]} -> found {value}")
    assert found == {knob: d.knobs[knob] for knob in found}


@pytest.fixture
def run_container(tmp_path: Path, shared: Path) -> Iterator[Callable[..., ContainerApi]]:
    """`podman run -e KNOB=x ...` of the image in api mode, read-only, as its own uid."""
    try:
        require_image()
    except NoImage as e:
        pytest.skip(str(e))
    started: list[ContainerApi] = []

    def _run(knobs: dict[str, str]) -> ContainerApi:
        name = f"knobs-{len(started)}"
        started.append(run_image(name, knobs, [f"{shared}:{shared}"], tmp_path / f"{name}.log"))
        return started[-1]

    yield _run
    for proc in started:
        proc.stop()


def container_tree(c: ContainerApi) -> list[psutil.Process]:
    return tree(psutil.Process(c.pid).ppid())  # tini's tree


@pytest.mark.parametrize("config", ["direct", "tls"])
def test_make_run_takes_every_knob_from_the_environment(
    sahara_conf: Path, shared: Path, tmp_path: Path, config: str
) -> None:
    knobs = {**configurations(shared)[config], "SAHARA_RUN_DIR": str(tmp_path / "run")}
    run = start_make_run(tmp_path, sahara_conf, **knobs)
    try:
        d = Deployment(knobs, lambda: [psutil.Process(p) for p in run.deployment()], Path("/"))
        d.wait_serving(lambda: run.popen.poll() is None, run.log_text)
        assert_landed(d, config, "make run")
    finally:
        kill_make_run(run)


@pytest.mark.parametrize("config", ["direct", "tls"])
def test_image_takes_every_knob_from_the_environment(run_container, shared: Path, config: str) -> None:
    knobs = {**configurations(shared)[config], "SAHARA_RUN_DIR": CONTAINER_RUN_DIR}
    c = run_container(knobs)
    d = Deployment(knobs, lambda: container_tree(c), Path("/"))
    d.wait_serving(lambda: c.popen.poll() is None, c.log_text, timeout=120)
    d.root = Path(f"/proc/{c.pid}/root")
    assert_landed(d, config, "image")


def error_line(output: str) -> str:
    (line,) = (line for line in output.splitlines() if line.startswith("sahara-api: ERROR: "))
    return line


@pytest.mark.parametrize("knob", [k for k, bad in BAD.items() if bad])
def test_a_bad_value_gets_the_same_line_in_every_path(
    knob: str, sahara_conf: Path, shared: Path, tmp_path: Path, run_container
) -> None:
    value, expected = BAD[knob]
    # make run: checked before anything starts (scripts/run.sh asks sahara_api_knobs.py)
    run = start_make_run(tmp_path, sahara_conf, **{knob: value})
    try:
        run.popen.wait(timeout=60)
    finally:
        kill_make_run(run)
    make_line = error_line(run.log_text())
    assert "Error 78" in run.log_text() and "[stack]" not in run.log_text(), run.log_text()
    # the image: the launcher, before uWSGI starts
    c = run_container({"SAHARA_CONFIG_FILES": str(shared / "knobs.conf"), knob: value})
    assert c.popen.wait(timeout=60) == 78, c.log_text()
    image_line = error_line(c.log_text())
    print(f"\n  {knob}={value}: {make_line}")
    assert make_line == image_line and make_line.startswith(f"sahara-api: ERROR: {expected}")
    assert_documented(make_line)


def test_chart_defaults_are_defaults_env() -> None:
    """`helm show values` shows deploy/defaults.env's values, but for the
    worker count: a pod's automatic count would see the node's CPUs."""
    values = yaml.safe_load(helm("show", "values", str(CHART)).stdout)
    for k in knob_table():
        if not k.chart:
            continue
        value = values
        for key in k.chart.split("."):
            value = value[key]
        shown = {True: "1", False: "0"}.get(value, str(value)) if isinstance(value, bool) else str(value)
        expected = k.chart_default or k.default
        assert shown == expected, f"{k.chart} ({shown}) is not deploy/defaults.env's {k.name} ({expected})"
    assert values["api"]["workers"] == 2, "a pod's automatic count would see the node's CPUs"


def test_generated_chart_files_are_current() -> None:
    """values.yaml's knob defaults, values.schema.json's bounds and the pod's env
    list are generated from deploy/defaults.env: `make chart-knobs` after an edit."""
    stale = write_chart_files(check=True)
    assert not stale, f"stale: {[str(p) for p in stale]}: run `make chart-knobs`"


def test_chart_passes_every_knob_to_the_pod(shared: Path) -> None:
    changed = configurations(shared)["direct"]
    sets = [f"{path}={changed[knob]}" for knob, path in CHART_VALUES.items() if knob != "SAHARA_API_ELASTIC"]
    sets.append("api.elastic=true")
    extra = [{"name": knob, "value": changed.get(knob, "/tmp/knob-run")} for knob in sorted(IMAGE_SETS)]
    values = Path(shared / "values.yaml")
    values.write_text(yaml.safe_dump({"extraEnv": extra}))
    _, docs = render("-f", str(values), *[a for s in sets for a in ("--set", s)])
    pod = find(docs, "Deployment", "api")["spec"]["template"]["spec"]["containers"][0]
    env = [(e["name"], e.get("value")) for e in pod["env"]]
    names = [name for name, _ in env]
    assert len(names) == len(set(names)), "every knob once"
    env = dict(env)
    engine = find(docs, "Deployment", "engine")["spec"]["template"]["spec"]
    for knob, path in CHART_VALUES.items():
        if path == "engine.terminationGracePeriodSeconds":  # the engine pod's, not an env
            assert str(engine["terminationGracePeriodSeconds"]) == changed[knob], knob
            continue
        assert env[knob] == ("1" if knob == "SAHARA_API_ELASTIC" else changed[knob]), knob
    for knob in IMAGE_SETS:
        assert env[knob] == changed.get(knob, "/tmp/knob-run"), knob
    assert env["SAHARA_METRICS_HOST"] == "0.0.0.0"
    _, docs = render("--set", "api.tls.enabled=true", "--set", "api.tls.secretName=tls")
    env = {
        e["name"]: e.get("value")
        for e in find(docs, "Deployment", "api")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["SAHARA_API_TLS_CERT"] and env["SAHARA_API_TLS_KEY"]


# A bad value the chart refuses before anything runs, naming the value.
CHART_BAD = {
    "SAHARA_API_WORKERS": "0",
    "SAHARA_API_THREADS": "0",
    "SAHARA_API_CPU_SLOTS": "-1",
    "SAHARA_API_ELASTIC": "yes",
    "SAHARA_API_PORT": "http",
    "SAHARA_API_TIMEOUT": "0",
    "SAHARA_API_STOP_TIMEOUT": "90",
    "SAHARA_ENGINE_STOP_TIMEOUT": "0",
    "SAHARA_API_MAX_REQUESTS": "0",
    "SAHARA_API_MAX_RSS_MB": "big",
    "SAHARA_API_MAX_BODY_MB": "0",
    "SAHARA_API_FRONT": "proxy",
    "SAHARA_METRICS_PORT": "metrics",
}


@pytest.mark.parametrize("knob", CHART_BAD)
def test_chart_refuses_a_bad_value(knob: str) -> None:
    path = CHART_VALUES[knob]
    out = helm("template", "sahara", str(CHART), "--set", f"{path}={CHART_BAD[knob]}")
    assert out.returncode != 0
    line = next(line for line in out.stderr.splitlines() if path in line)
    print(f"\n  {path}={CHART_BAD[knob]}: {line.strip()}")
    assert_documented(line)
