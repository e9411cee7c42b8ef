"""The chart on a real single-node Kubernetes (issue 28), in the order a
deployer meets it: install with the defaults, upgrade and drain under load, a
pod deleted mid-upload, a killed container, a signal to uWSGI's master,
Keystone gone, the HPA and the Prometheus Operator's kinds without their
CRDs, bad input, uninstall.

Each check prints its figures; `make cluster-test` runs them in file order
(later checks use the release the first one installs)."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests
from keystoneauth1 import session as ks_session
from saharaclient.api.client import ClientV2

from cluster.values import write_values
from harness.chart import CHART
from harness.kube import Kube, pod_ip_of_connection, ready, wait_gone, waiting_reasons
from harness.load import UPLOAD_SIGNAL_AT, Load, trickle_put
from harness.procs import alive, serves, tree, uwsgi_master_in, wait_for
from harness.tcp_proxy import TcpProxy
from harness.troubleshooting import assert_documented

NS = "sahara"
RELEASE = "sahara-api"  # the chart's full name is then the release's: sahara-api-api, sahara-api-db-sync
API = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=api"
ENGINE = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=engine"
PORT = 8386  # the chart's service.port


def say(what: str) -> None:
    print(f"[cluster-test] {what}", flush=True)


def when(stamp: str) -> datetime:
    """Kubernetes' and helm's timestamps (helm's in nanoseconds: cut to microseconds)."""
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", stamp.replace("Z", "+00:00")))


@pytest.fixture(scope="module")
def url(kube: Kube) -> str:
    """The Service, at its ClusterIP: kube-proxy's rules take this machine's own connections there too."""
    return f"http://{kube.cluster_ip(NS, RELEASE)}:{PORT}"


class PodWatch:
    """The API pods, every 0.2 s while it runs: the fewest Ready at once, and
    how long each deleted pod took from its deletion to gone (preStop's drain)."""

    def __init__(self, kube: Kube) -> None:
        self.kube, self.min_ready, self.deleted, self.gone = kube, 99, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        seen: set[str] = set()
        while not self._stop.is_set():
            pods = self.kube.pods(NS, API)
            names = {p["metadata"]["name"] for p in pods}
            self.min_ready = min(self.min_ready, sum(ready(p) for p in pods))
            for p in pods:
                if p["metadata"].get("deletionTimestamp") and p["metadata"]["name"] not in self.deleted:
                    self.deleted[p["metadata"]["name"]] = time.monotonic()
            for name in seen - names:
                self.gone.setdefault(name, time.monotonic())
            seen |= names
            self._stop.wait(0.2)

    def __enter__(self) -> PodWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def drain_seconds(self) -> dict[str, float]:
        return {n: round(self.gone[n] - t, 1) for n, t in self.deleted.items() if n in self.gone}


def steady(kube: Kube) -> bool:
    """Both API pods Ready and none terminating (a deleted pod stays Ready until its probe notices)."""
    pods = kube.pods(NS, API)
    return len(pods) == 2 and all(ready(p) and not p["metadata"].get("deletionTimestamp") for p in pods)


@pytest.fixture(scope="module")
def installed(kube: Kube, values: Path) -> Iterator[None]:
    yield
    # Whatever a check left: the release goes (the last check asserts that on its own).
    if RELEASE in kube.helm("list", "-n", NS, "-q").stdout.split():
        kube.helm("uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "5m")


def test_install_with_the_defaults(kube: Kube, values: Path, keystone: ks_session.Session, token: str) -> None:
    """Check 1: helm install, values only for addresses, secrets and the image."""
    t0 = time.monotonic()
    kube.install(RELEASE, NS, values, "--wait", "--timeout", "10m")
    say(f"helm install --wait: {time.monotonic() - t0:.1f} s")

    # The hook Job is deleted once it succeeds: helm's release record keeps when it ran.
    status = json.loads(kube.helm("status", RELEASE, "-n", NS, "-o", "json").stdout)
    hook = next(h for h in status["hooks"] if h["kind"] == "Job")
    assert hook["last_run"]["phase"] == "Succeeded", hook
    migrated = when(hook["last_run"]["completed_at"]).replace(microsecond=0)
    pods = kube.pods(NS, API)
    assert len(pods) == 2 and all(ready(p) for p in pods), [p["status"] for p in pods]
    for p in pods:
        # The hook finished before the Deployment (and so its pods) existed.
        assert when(p["metadata"]["creationTimestamp"]) >= migrated, (p["metadata"]["creationTimestamp"], migrated)
        c = p["spec"]["containers"][0]
        assert c["readinessProbe"]["httpGet"]["path"] == "/healthcheck" and "tcpSocket" in c["livenessProbe"]
        started = when(p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"])
        readied = next(when(c["lastTransitionTime"]) for c in p["status"]["conditions"] if c["type"] == "Ready")
        say(f"{p['metadata']['name']}: created {p['metadata']['creationTimestamp']}, db-sync done {migrated:%H:%M:%S}, "
            f"Ready {(readied - started).total_seconds():.0f} s after its container started")  # fmt: skip
    engines = kube.pods(NS, ENGINE)
    assert len(engines) == 1 and engines[0]["status"]["phase"] == "Running" and ready(engines[0])

    base = f"http://{kube.cluster_ip(NS, RELEASE)}:{PORT}"
    assert requests.get(f"{base}/healthcheck", timeout=10).status_code == 200
    assert requests.get(f"{base}/v2/plugins", timeout=10).status_code == 401
    plugins = requests.get(f"{base}/v2/plugins", headers={"X-Auth-Token": token}, timeout=30)
    assert plugins.status_code == 200 and [p["name"] for p in plugins.json()["plugins"]] == ["fake"], plugins.text

    client = ClientV2(session=keystone, sahara_url=f"{base}/v2")
    name = f"ngt-{uuid.uuid4().hex[:8]}"
    # flavor_id 0: Sahara checks a flavor with Nova only when it is set (there is no Nova here).
    ngt = client.node_group_templates.create(name, "fake", "0.1", 0, node_processes=["datanode"])
    assert name in [t.name for t in client.node_group_templates.list()]
    assert client.node_group_templates.get(ngt.id).name == name
    client.node_group_templates.delete(ngt.id)
    assert name not in [t.name for t in client.node_group_templates.list()]
    say(f"Service {base}: /healthcheck 200, /v2/plugins 401 / 200 [fake], node group template CRUD ok")


def test_upgrade_and_drain_under_load(kube: Kube, values: Path, url: str, token: str, installed: None) -> None:
    """Check 2: a helm upgrade that changes the pod template, then a node drain
    against the PodDisruptionBudget, under steady load through the Service."""
    old = {p["metadata"]["name"] for p in kube.pods(NS, API)}
    with PodWatch(kube) as watch, Load(url, token, clients=4, pause=0.05, timeout=30, max_seconds=900) as load:
        load.warm(20)
        t0 = time.monotonic()
        out = kube.helm(
            "upgrade", RELEASE, str(CHART), "-n", NS, "-f", str(values),
            "--set", "podAnnotations.cluster-test/rollout=1", "--wait", "--timeout", "10m",
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        kube.kubectl("rollout", "status", "-n", NS, f"deployment/{RELEASE}-api", "--timeout=5m")
        wait_for(lambda: old <= set(watch.gone), 120, "old pods gone")
        upgraded = time.monotonic() - t0
        rollout_min_ready = watch.min_ready
        during_upgrade = load.summary()

        # A node drain evicts through the PDB (maxUnavailable 1): one API pod
        # goes, the other is refused while the first has no Ready replacement
        # (the node is cordoned: none can come), until drain's timeout.
        t1 = time.monotonic()
        drain = kube.kubectl(
            "drain", kube.env["CLUSTER_NODE"], "--pod-selector", API, "--delete-emptydir-data",
            "--ignore-daemonsets", "--timeout=25s", check=False, timeout=120,
        )  # fmt: skip
        drained = time.monotonic() - t1
        kube.kubectl("uncordon", kube.env["CLUSTER_NODE"])
        wait_for(lambda: steady(kube), 300, "2 API pods Ready after the drain")
    say(f"upgrade: {upgraded:.1f} s, fewest Ready API pods during it {rollout_min_ready}; load then: {during_upgrade}")
    say(f"old pods' deletion to gone (preStop {5} s + stop): {watch.drain_seconds()}")
    say(f"drain {drained:.1f} s: {[line for line in drain.splitlines() if 'evict' in line.lower()][:4]}")
    say(f"load over upgrade + drain: {load.summary()}")
    assert rollout_min_ready >= 2, "maxUnavailable 0: a Ready pod was lost during the rollout"
    assert "disruption budget" in drain, drain
    assert watch.min_ready >= 1, "the PDB let every API pod go"
    assert all(s >= 5 for s in watch.drain_seconds().values()), watch.drain_seconds()
    assert not load.failed(), load.summary()


def test_pod_deleted_during_an_upload(kube: Kube, url: str, token: str, installed: None) -> None:
    """Check 3: the pod a 4 MiB upload at 1 MiB/s goes to is deleted 1.5 s in."""
    result: dict = {}
    with Load(url, token, clients=2, pause=0.05, timeout=30, max_seconds=300) as load:
        load.warm(10)
        upload = threading.Thread(target=trickle_put, args=(url, token, result), daemon=True)
        upload.start()
        wait_for(lambda: "sent_head" in result, 10, "the upload's head sent")
        time.sleep(max(0.0, result["sent_head"] + UPLOAD_SIGNAL_AT - time.monotonic()))
        ip = pod_ip_of_connection(result["local_port"])
        pod = next(p for p in kube.pods(NS, API) if p["status"].get("podIP") == ip)
        deleted_at = time.monotonic()
        kube.kubectl("delete", "pod", "-n", NS, pod["metadata"]["name"], "--wait=false")
        upload.join(60)
        wait_for(lambda: steady(kube), 300, "a replacement Ready, the deleted pod gone")
    answered = result.get("end", 0) - deleted_at
    say(f"upload to {pod['metadata']['name']} ({ip}), deleted {UPLOAD_SIGNAL_AT} s in: status {result.get('status')} "
        f"{answered:.1f} s after the delete; load {load.summary()}")  # fmt: skip
    assert result.get("status") == 404, result  # Sahara's own answer: no such cluster
    assert not load.failed(started_before=deleted_at), load.summary()
    assert not load.failed(), load.summary()


def test_killed_main_process_is_restarted(kube: Kube, url: str, token: str, installed: None) -> None:
    """Check 4: the API container's main process (tini) SIGKILLed from the host."""
    wait_for(lambda: steady(kube), 300, "2 API pods Ready, none terminating")
    pod = kube.pods(NS, API)[0]
    name = pod["metadata"]["name"]
    restarts = pod["status"]["containerStatuses"][0]["restartCount"]
    pid = kube.main_pid(pod, "api")
    with Load(url, token, clients=2, pause=0.05, timeout=30, max_seconds=300) as load:
        load.warm(10)
        os.kill(pid, signal.SIGKILL)

        def status() -> dict:
            return kube.json("get", "pod", name, "-n", NS)

        not_ready = wait_for(lambda: not ready(status()), 30, "the pod NotReady after the kill")
        restarted = wait_for(lambda: status()["status"]["containerStatuses"][0]["restartCount"] > restarts, 120,
                             "the kubelet restarting the container")  # fmt: skip
        back = wait_for(lambda: ready(status()), 180, "Ready again") + restarted
    last = status()["status"]["containerStatuses"][0]["lastState"]["terminated"]
    events = kube.events(NS)
    say(f"SIGKILL pid {pid} of {name}: NotReady after {not_ready:.1f} s, restarted after {restarted:.1f} s, "
        f"Ready again after {back:.1f} s; last state {last.get('reason')} exit {last.get('exitCode')}; "
        f"load {load.summary()}")  # fmt: skip
    assert last.get("exitCode") == 137, last
    # A liveness probe may see the port closed while the container restarts
    # (one miss of 6); the restart must be the kill's, not the probe's.
    assert "failed liveness probe, will be restarted" not in events, events


def uwsgi_and_front(main_pid: int) -> tuple[int, set[int]]:
    """Host pids of a pod's uWSGI master and of its nginx (master and workers)."""
    procs = tree(main_pid)
    return uwsgi_master_in(procs).pid, {p.pid for p in procs if p.name() == "nginx"}


def test_signal_to_uwsgi_master_in_a_pod(kube: Kube, url: str, token: str, installed: None) -> None:
    """Check 4b: INT, QUIT and KILL to a pod's uWSGI master itself, as an
    operator who reads uWSGI's docs sends them (issue 30): no nginx of the old
    master is left, the kubelet restarts the container, the pod is Ready again."""
    with Load(url, token, clients=2, pause=0.05, timeout=30, max_seconds=600) as load:
        load.warm(10)
        for i, sig in enumerate((signal.SIGINT, signal.SIGQUIT, signal.SIGKILL)):
            wait_for(lambda: steady(kube), 300, "2 API pods Ready, none terminating")
            pod = kube.pods(NS, API)[i % 2]
            name = pod["metadata"]["name"]
            restarts = pod["status"]["containerStatuses"][0]["restartCount"]
            master, front = uwsgi_and_front(kube.main_pid(pod, "api"))
            os.kill(master, sig)
            gone = wait_for(lambda front=front: not any(map(alive, front)), 10, f"nginx {front} of the old master gone")

            def status(name: str = name) -> dict:
                return kube.json("get", "pod", name, "-n", NS)

            restarted = wait_for(lambda restarts=restarts: status()["status"]["containerStatuses"][0]["restartCount"]
                                 > restarts, 120, "the kubelet restarting the container")  # fmt: skip
            back = wait_for(lambda: ready(status()), 180, "Ready again") + restarted
            last = status()["status"]["containerStatuses"][0]["lastState"]["terminated"]
            say(f"{sig.name} to uWSGI's master {master} of {name}: its nginx gone after "
                f"{gone:.1f} s, restarted after {restarted:.1f} s, Ready again after {back:.1f} s; "
                f"exit {last.get('exitCode')}")  # fmt: skip
    say(f"load through the Service meanwhile: {load.summary()}")


def test_keystone_unreachable(
    kube: Kube, url: str, keystone: ks_session.Session, relays: dict[str, TcpProxy], installed: None
) -> None:
    """Bad input: Keystone down (its relay to the pods stopped)."""
    keystone.invalidate()
    fresh = keystone.get_token()  # a token no pod has cached yet: it must be validated
    relays["keystone"].stop()  # Keystone itself listens on 127.0.0.1 only: the pods lose it
    try:
        answer = requests.get(f"{url}/v2/plugins", headers={"X-Auth-Token": fresh}, timeout=60)
        health = requests.get(f"{url}/healthcheck", timeout=10).status_code
        pods = kube.pods(NS, API)
        logs = "".join(kube.logs(NS, p["metadata"]["name"], "--since=2m") for p in pods)
    finally:
        relays["keystone"].start()
    line = next((x for x in logs.splitlines() if "auth_token" in x and "service_token_roles" not in x), "")
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # oslo.log colours the level for a terminal
    say(f"Keystone unreachable: GET /v2/plugins {answer.status_code} {answer.text[:120]!r}; /healthcheck {health}; "
        f"pods Ready {[ready(p) for p in pods]}; log: {line[:300]}")  # fmt: skip
    assert answer.status_code == 503, answer.text
    assert health == 200 and all(ready(p) for p in pods)
    assert line, logs[-3000:]
    assert_documented(line)
    wait_for(lambda: serves(f"{url}/v2/plugins", keystone.get_token(), timeout=30), 60, "serving again")


def test_hpa_and_operator_kinds_without_their_crds(kube: Kube, values: Path, installed: None) -> None:
    """Check 5: the HPA is accepted and says it has no metrics; ServiceMonitor
    and PrometheusRule without the Prometheus Operator's CRDs fail the install
    with a clear line and leave nothing."""
    out = kube.helm("upgrade", RELEASE, str(CHART), "-n", NS, "-f", str(values),
                    "--set", "autoscaling.enabled=true", "--wait", "--timeout", "10m")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr

    def hpa_condition() -> dict | None:
        hpa = kube.json("get", "hpa", RELEASE, "-n", NS)
        return next((c for c in hpa["status"].get("conditions", []) if c["type"] == "ScalingActive"), None)

    wait_for(lambda: (c := hpa_condition()) and c["status"] == "False", 120, "the HPA's ScalingActive condition")
    cond = hpa_condition()
    say(f"HPA: ScalingActive False, {cond['reason']}: {cond['message'][:200]}")
    assert cond["reason"] == "FailedGetResourceMetric", cond
    assert_documented(cond["message"])

    for kind, value in (("ServiceMonitor", "serviceMonitor"), ("PrometheusRule", "prometheusRule")):
        release = f"crd-{value.lower()}"
        out = kube.helm("install", release, str(CHART), "-n", NS, "-f", str(values),
                        "--set", f"metrics.{value}.enabled=true", "--timeout", "2m")  # fmt: skip
        say(f"{kind} without its CRD: helm rc {out.returncode}: {out.stderr.strip()[:300]}")
        assert out.returncode != 0 and kind in out.stderr, out.stdout + out.stderr
        assert_documented(next(x for x in out.stderr.splitlines() if x.startswith("Error:")))
        left = kube.kubectl("get", "all,secret,configmap,pdb,job", "-n", NS, "-l",
                            f"app.kubernetes.io/instance={release}", "-o", "name")  # fmt: skip
        assert not left.strip(), left
        assert release not in kube.helm("list", "-n", NS, "-a", "-q").stdout

    out = kube.helm("upgrade", RELEASE, str(CHART), "-n", NS, "-f", str(values), "--wait", "--timeout", "10m")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "NotFound" in kube.kubectl("get", "hpa", RELEASE, "-n", NS, check=False)


@pytest.fixture
def bad_namespace(kube: Kube) -> Iterator[str]:
    ns = f"bad-{uuid.uuid4().hex[:6]}"
    yield ns
    for release in kube.helm("list", "-n", ns, "-a", "-q").stdout.split():
        kube.helm("uninstall", release, "-n", ns, "--timeout", "2m")
    kube.kubectl("delete", "namespace", ns, "--timeout=5m", check=False, timeout=400)


def test_missing_image(kube: Kube, values: Path, bad_namespace: str, tmp_path: Path, transport_url: str) -> None:
    """Bad input: an image the node does not have."""
    bad = write_values(tmp_path / "v.yaml", kube, transport_url, image__tag="no-such-tag")
    out = kube.helm("install", "missing", str(CHART), "-n", bad_namespace, "--create-namespace", "-f", str(bad),
                    "--timeout", "40s")  # fmt: skip
    pods = kube.pods(bad_namespace)
    reasons = set().union(*(waiting_reasons(p) for p in pods)) if pods else set()
    events = kube.events(bad_namespace)
    line = next((x for x in events.splitlines() if "no-such-tag" in x), "")
    say(f"missing image: helm rc {out.returncode} ({out.stderr.strip()[:120]}); pod states {reasons}; event: {line}")
    assert out.returncode != 0
    assert "ErrImageNeverPull" in reasons, reasons
    assert "not present with pull policy of Never" in events, events
    assert_documented(line[line.index("Container image") :])


def test_wrong_database_password(
    kube: Kube, values: Path, bad_namespace: str, tmp_path: Path, transport_url: str
) -> None:
    """Bad input: a wrong DB password, in the db-sync hook and in the API pods."""
    wrong = f"mysql+pymysql://sahara:wrong@{kube.gateway}:3306/sahara"
    bad = write_values(tmp_path / "v.yaml", kube, transport_url, secrets__databaseConnection=wrong,
                       dbSync__backoffLimit=0)  # fmt: skip
    out = kube.helm("install", "badpw", str(CHART), "-n", bad_namespace, "--create-namespace", "-f", str(bad),
                    "--timeout", "3m")  # fmt: skip
    hook_log = kube.logs(bad_namespace, "job/badpw-sahara-api-db-sync")
    say(f"wrong password, install: helm rc {out.returncode} ({out.stderr.strip()[:160]}); "
        f"hook log: {hook_log.strip()[-300:]}")  # fmt: skip
    assert out.returncode != 0
    assert "cannot connect to the database" in hook_log and "1045" in hook_log, hook_log
    assert_documented(next(x for x in hook_log.splitlines() if x.startswith("sahara-api: ERROR")))
    # Helm deletes a hook's resources only when every hook succeeded: the
    # failed Job and the Secret beside it stay (troubleshooting.md says so).
    left = kube.kubectl("get", "job,secret", "-n", bad_namespace, "-l", "app.kubernetes.io/component=db-sync",
                        "-o", "name")  # fmt: skip
    say(f"after the failed install: {left.split()}")

    # The API pods of a release whose hook did not run (--no-hooks): the launcher's line, then a back-off.
    out = kube.helm("install", "badpw-api", str(CHART), "-n", bad_namespace, "-f", str(bad), "--no-hooks")
    assert out.returncode == 0, out.stderr
    selector = "app.kubernetes.io/instance=badpw-api,app.kubernetes.io/component=api"

    def crashing() -> bool:
        return any("CrashLoopBackOff" in waiting_reasons(p) for p in kube.pods(bad_namespace, selector))

    wait_for(crashing, 180, "CrashLoopBackOff")
    pod = next(p for p in kube.pods(bad_namespace, selector) if "CrashLoopBackOff" in waiting_reasons(p))
    pod = pod["metadata"]["name"]
    # The last run's output: `kubectl logs` (the container that ended), or --previous.
    log = kube.logs(bad_namespace, pod) + kube.logs(bad_namespace, pod, "--previous")
    say(f"wrong password, API pod {pod}: CrashLoopBackOff; kubectl logs: {log.strip()[-300:]}")  # fmt: skip
    assert "cannot connect to the database" in log and "1045" in log, log


def test_uninstall_leaves_nothing(kube: Kube, installed: None) -> None:
    """Check 6: helm uninstall, then nothing of the release in the cluster."""
    t0 = time.monotonic()
    out = kube.helm("uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "5m")
    assert out.returncode == 0, out.stderr
    wait_gone(kube, NS, f"app.kubernetes.io/instance={RELEASE}", 300)
    kinds = kube.kubectl("api-resources", "--verbs=list", "--namespaced", "-o", "name").split()
    left = kube.kubectl("get", ",".join(kinds), "-n", NS, "-l", f"app.kubernetes.io/instance={RELEASE}",
                        "-o", "name", "--ignore-not-found")  # fmt: skip
    left += kube.kubectl("get", "secret,configmap,job", "-n", NS, "-o", "name")
    left = "\n".join(x for x in left.split() if "kube-root-ca.crt" not in x)
    say(f"helm uninstall: {time.monotonic() - t0:.1f} s; left in {NS}: {left or 'nothing'}")
    assert not left, left
