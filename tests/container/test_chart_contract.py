"""The chart's contract, without a cluster: render the chart, then run the api
container exactly as its Deployment describes it (image, command/args, env
and Secret, user, read-only root, dropped capabilities, mounts) with podman,
the way a kubelet would. Probe it as the kubelet would, then delete the pod:
preStop (drain + sleep), SIGTERM, wait at most the grace period, while a
load balancer that follows the readiness probe keeps sending requests."""

from __future__ import annotations

import configparser
import json
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from harness.chart import find, render
from harness.load import UPLOAD_SIGNAL_AT, Load, trickle_put
from harness.podman import IMAGE, RUN, Container, podman
from harness.procs import free_port

pytestmark = pytest.mark.chart


@pytest.fixture
def chart_values(sahara_conf: Path, tmp_path: Path) -> Path:
    """Values pointing the chart at the local stack; the API on a free port (host network)."""
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(sahara_conf)
    ks = conf["keystone_authtoken"]
    port = free_port()
    values = {
        # Host network: the Service's port is the pod's (the helm test pod dials the Service).
        "api": {"port": port, "workers": 2},
        "service": {"port": port},
        "metrics": {"port": free_port()},
        # The image under test (SAHARA_IMAGE), not the chart's default tag.
        "image": dict(zip(("repository", "tag"), IMAGE.rsplit(":", 1), strict=True)),
        "keystone": {"authUrl": ks["auth_url"], "interface": "public", "memcachedServers": ks["memcached_servers"]},
        "secrets": {
            "databaseConnection": conf["database"]["connection"],
            "transportUrl": conf["DEFAULT"]["transport_url"],
            "keystonePassword": ks["password"],
        },
    }
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


class Kubelet:
    """Runs one container of a rendered pod spec with podman; removes it at the end."""

    def __init__(self, docs: list[dict], tmp_path: Path) -> None:
        self.docs = docs
        self.tmp_path = tmp_path
        self.names: list[str] = []

    def run(self, pod: dict, container: dict, options: tuple[str, ...] = ()) -> Container:
        name = f"sahara-chart-{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        argv = [*RUN, "-d", "--name", name, *options]
        if "command" in container:
            argv += ["--entrypoint", json.dumps(container["command"])]
        for e in container.get("env", []):
            argv += ["-e", f"{e['name']}={e['value']}"]
        for source in container.get("envFrom", []):
            secret = next(
                d for d in self.docs if d["kind"] == "Secret" and d["metadata"]["name"] == source["secretRef"]["name"]
            )
            argv += [a for k, v in secret["stringData"].items() for a in ("-e", f"{k}={v}")]
        pod_sc, sc = pod.get("securityContext", {}), container.get("securityContext", {})
        if "runAsUser" in pod_sc:
            argv += ["--user", f"{pod_sc['runAsUser']}:{pod_sc.get('runAsGroup', 0)}"]
        if sc.get("readOnlyRootFilesystem"):
            argv += ["--read-only", "--read-only-tmpfs=false"]
        argv += [f"--cap-drop={c}" for c in sc.get("capabilities", {}).get("drop", [])]
        if sc.get("allowPrivilegeEscalation") is False:
            argv += ["--security-opt", "no-new-privileges"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "emptyDir" in volume:
                argv += ["--tmpfs", f"{mount['mountPath']}:rw,mode=1777"]
            elif "configMap" in volume:
                cm = next(d for d in self.docs if d["kind"] == "ConfigMap")
                path = self.tmp_path / f"{name}-{mount['subPath']}"
                path.write_text(cm["data"][mount["subPath"]])
                path.chmod(0o644)
                argv += ["-v", f"{path}:{mount['mountPath']}:ro"]
        argv += [container["image"], *container.get("args", [])]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        port = next((p["containerPort"] for p in container.get("ports", [])), 0)
        return Container(name=name, port=port)

    def remove_all(self) -> None:
        for name in self.names:
            podman("rm", "-f", "-t", "0", name, timeout=60)


@pytest.fixture
def kubelet(image: str, chart_values: Path, tmp_path: Path):
    k = Kubelet(render("-f", str(chart_values))[1], tmp_path)
    yield k
    k.remove_all()


def probe(c: Container, spec: dict) -> bool:
    """One probe as the kubelet runs it: httpGet 200-399 or a TCP connect, within timeoutSeconds."""
    try:
        if "httpGet" in spec:
            r = requests.get(f"{c.url}{spec['httpGet']['path']}", timeout=spec["timeoutSeconds"])
            return 200 <= r.status_code < 400
        with socket.create_connection(("127.0.0.1", c.port), timeout=spec["timeoutSeconds"]):
            return True
    except OSError:
        return False


def scrape(url: str, within: float) -> str:
    """The first answer from url, retried until `within` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        try:
            return requests.get(url, timeout=10).text
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_api_pod_starts_probes_and_drains_without_a_failed_request(kubelet: Kubelet, token: str) -> None:
    deployment = find(kubelet.docs, "Deployment", "api")
    pod = deployment["spec"]["template"]["spec"]
    (spec,) = pod["containers"]
    c = kubelet.run(pod, spec)

    # startupProbe: the container has periodSeconds x failureThreshold to pass it.
    startup = spec["startupProbe"]
    t0 = time.monotonic()
    for _ in range(startup["failureThreshold"]):
        if probe(c, startup):
            break
        assert c.running(), c.logs()[-3000:]
        time.sleep(startup["periodSeconds"])
    else:
        pytest.fail(f"startupProbe never passed:\n{c.logs()[-3000:]}")
    print(f"startupProbe passed after {time.monotonic() - t0:.1f} s")
    assert probe(c, spec["readinessProbe"]) and probe(c, spec["livenessProbe"])
    uids = {p.uids().real for p in c.processes()}
    assert 0 not in uids and uids == {pod["securityContext"]["runAsUser"]}
    # What the metrics Service's endpoint (the pod IP) answers a scrape with.
    # The exporter starts beside the API, not before its probes pass: scrape as Prometheus does, again.
    metrics_port = next(p["containerPort"] for p in spec["ports"] if p["name"] == "metrics")
    assert "uwsgi_up 1.0" in scrape(f"http://127.0.0.1:{metrics_port}/metrics", within=30)

    # A load balancer that follows the readiness probe, and clients behind it.
    readiness = spec["readinessProbe"]
    in_service = threading.Event()
    in_service.set()
    stop_balancer = threading.Event()

    def balancer() -> None:
        misses = 0
        while not stop_balancer.is_set():
            misses = 0 if probe(c, readiness) else misses + 1
            if misses >= readiness["failureThreshold"]:
                in_service.clear()
            stop_balancer.wait(readiness["periodSeconds"])

    lb = threading.Thread(target=balancer, daemon=True)
    lb.start()
    load = Load(c.url, token, path="/v2/clusters", sending=in_service.is_set).start()
    load.warm()  # in service, every worker past its first (slow) request

    # Pod deletion: preStop runs to completion, then SIGTERM to PID 1, SIGKILL after the grace period.
    grace = pod["terminationGracePeriodSeconds"]
    deleted = time.monotonic()
    ok_before = load.ok
    pre_stop = c.exec(*spec["lifecycle"]["preStop"]["exec"]["command"], timeout=grace)
    pre_stop_took = time.monotonic() - deleted
    ok_during_pre_stop = load.ok - ok_before
    assert pre_stop.returncode == 0, pre_stop.stderr
    assert not in_service.is_set(), "still in service when preStop ended: SIGTERM would cut requests"
    # A client still uploading when the kubelet's TERM comes (it started before the drain ended).
    upload: dict[str, float | int | str] = {}
    uploader = threading.Thread(target=trickle_put, args=(c.url, token, upload))
    uploader.start()
    time.sleep(UPLOAD_SIGNAL_AT)
    t_term = time.monotonic()
    c.kill("TERM")
    try:
        rc = c.wait(timeout=max(1, grace - pre_stop_took))
    except subprocess.TimeoutExpired:
        c.kill("KILL")
        rc = None
    stopped = time.monotonic() - deleted
    uploader.join(timeout=60)
    stop_balancer.set()
    load.stop()
    lb.join(timeout=10)
    print(
        f"preStop {pre_stop_took:.1f} s ({ok_during_pre_stop} requests served meanwhile), "
        f"stopped {stopped:.1f} s after deletion (grace {grace} s), {time.monotonic() - t_term:.1f} s after TERM,"
        f" exit {rc}; upload: {upload.get('status')} at +{float(upload.get('end', 0)) - t_term:.2f} s;"
        f" load: {load.summary()}"
    )
    assert upload.get("status") == 404 and float(upload["end"]) > t_term, f"Sahara's own answer: {upload}"
    assert rc == 0, f"not stopped within the grace period:\n{c.logs()[-2000:]}"
    assert load.failed() == [] and load.refused() == []
    assert ok_during_pre_stop > 0, "requests kept flowing while the pod drained"


def test_db_sync_hook_container_runs(kubelet: Kubelet) -> None:
    job = find(kubelet.docs, "Job", "db-sync")
    pod = job["spec"]["template"]["spec"]
    c = kubelet.run(pod, pod["containers"][0])
    rc = c.wait(timeout=job["spec"]["activeDeadlineSeconds"])
    print(c.logs()[-500:])
    assert rc == 0


def test_engine_pod_runs_and_stops_within_its_grace_period(kubelet: Kubelet) -> None:
    deployment = find(kubelet.docs, "Deployment", "engine")
    pod = deployment["spec"]["template"]["spec"]
    c = kubelet.run(pod, pod["containers"][0])
    time.sleep(8)  # past the launcher's checks: sahara-engine is serving RPC
    assert c.running(), c.logs()[-3000:]
    # The launcher's engine mode runs sahara_api_engine.py (sahara-engine with its secrets marked).
    assert any("sahara_api_engine.py" in " ".join(p.cmdline()) for p in c.processes())
    grace = pod["terminationGracePeriodSeconds"]
    t0 = time.monotonic()
    c.kill("TERM")
    rc = c.wait(timeout=grace)
    print(f"engine stopped {time.monotonic() - t0:.1f} s after SIGTERM (grace {grace} s), exit {rc}")
    assert rc == 0


def test_helm_test_pod_passes_against_the_api(kubelet: Kubelet) -> None:
    """`helm test`: the test pod's own script, against the rendered api pod,
    with the Service name resolving to it."""
    pod = find(kubelet.docs, "Deployment", "api")["spec"]["template"]["spec"]
    api = kubelet.run(pod, pod["containers"][0])
    api.wait_ready()
    service = find(kubelet.docs, "Service", "api")["metadata"]["name"]
    test_pod = find(kubelet.docs, "Pod", "test")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    c = kubelet.run(test_pod["spec"], test_pod["spec"]["containers"][0], ("--add-host", f"{service}:127.0.0.1"))
    rc = c.wait(timeout=60)
    print(c.logs().strip())
    assert rc == 0
