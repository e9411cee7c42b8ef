"""The single-node Kubernetes of `make cluster-test` (scripts/cluster.sh) as
the cluster checks use it: kubectl and helm on the run's kubeconfig, pods and
their states, the Service's ClusterIP, which pod a connection went to
(conntrack), a container's main process on the host."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness import ROOT
from harness.chart import CHART, HELM

CLUSTER_SH = ROOT / "scripts" / "cluster.sh"  # owns the run's paths (CLUSTER_RUN and its default)


@dataclass
class Kube:
    """The cluster scripts/cluster.sh brought up (its cluster.env)."""

    env: dict[str, str]

    @classmethod
    def from_run(cls) -> Kube:
        out = subprocess.run([str(CLUSTER_SH), "env-file"], capture_output=True, text=True, check=True, timeout=30)
        path = Path(out.stdout.strip())
        if not path.exists():
            raise RuntimeError(f"{path} is missing: scripts/cluster.sh up first (make cluster-test does)")
        return cls(dict(line.split("=", 1) for line in path.read_text().split()))

    @property
    def gateway(self) -> str:
        """The bridge's address: the node IP, and where the pods reach the stack."""
        return self.env["CLUSTER_GATEWAY"]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.env["KUBECONFIG"]}

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        kubectl = f"{self.env['CLUSTER_BIN']}/kubectl"
        out = subprocess.run([kubectl, *args], env=self._env(), capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: rc {out.returncode}\n{out.stdout}{out.stderr}")
        return out.stdout + (out.stderr if not check else "")

    def json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def helm(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        """helm on the run's kubeconfig; the caller checks returncode (some checks expect a failure).
        stderr without helm's note on each of the chart's files/ symlinks."""
        out = subprocess.run([str(HELM), *args], env=self._env(), capture_output=True, text=True, timeout=timeout)
        out.stderr = "".join(line for line in out.stderr.splitlines(True) if not line.startswith("walk.go:"))
        return out

    def install(self, release: str, namespace: str, values: Path, *args: str, timeout: float = 900) -> None:
        """helm install of the chart as shipped, failing the check with helm's own words."""
        out = self.helm(
            "install", release, str(CHART), "-n", namespace, "--create-namespace", "-f", str(values), *args,
            timeout=timeout,
        )  # fmt: skip
        assert out.returncode == 0, f"helm install {release}: {out.stdout}{out.stderr}"

    def pods(self, namespace: str, selector: str = "") -> list[dict]:
        return self.json("get", "pods", "-n", namespace, *(["-l", selector] if selector else []))["items"]

    def cluster_ip(self, namespace: str, service: str) -> str:
        return self.json("get", "service", service, "-n", namespace)["spec"]["clusterIP"]

    def logs(self, namespace: str, what: str, *args: str) -> str:
        return self.kubectl("logs", "-n", namespace, what, *args, check=False)

    def events(self, namespace: str) -> str:
        return self.kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False)

    def main_pid(self, pod: dict, container: str) -> int:
        """The host pid of a container's main process (tini, PID 1 in the container)."""
        status = next(s for s in pod["status"]["containerStatuses"] if s["name"] == container)
        cid = status["containerID"].removeprefix("containerd://")
        sock = self.env["CLUSTER_CONTAINERD"]
        out = subprocess.run(
            ["ctr", "--address", sock, "-n", "k8s.io", "tasks", "ls"], capture_output=True, text=True, check=True
        ).stdout
        for line in out.splitlines():
            words = line.split()
            if words and words[0] == cid:
                return int(words[1])
        raise AssertionError(f"no task for container {cid}:\n{out}")


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def waiting_reasons(pod: dict) -> set[str]:
    """The reasons its containers wait for (ErrImageNeverPull, CrashLoopBackOff, ...) or ended with (Error)."""
    reasons = set()
    for s in pod["status"].get("containerStatuses", []) + pod["status"].get("initContainerStatuses", []):
        for state in ("waiting", "terminated"):
            if state in s["state"]:
                reasons.add(s["state"][state].get("reason", ""))
        if "terminated" in s.get("lastState", {}):
            reasons.add(s["lastState"]["terminated"].get("reason", ""))
    return reasons - {""}


def pod_ip_of_connection(local_port: int) -> str:
    """The pod a connection from this machine's `local_port` was sent to: the
    reply source of its conntrack entry (kube-proxy DNATs a ClusterIP per connection)."""
    out = subprocess.run(
        ["conntrack", "-L", "-p", "tcp", "--sport", str(local_port)], capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        sources = re.findall(r"src=(\S+)", line)
        if len(sources) == 2:
            return sources[1]
    raise AssertionError(f"no conntrack entry for source port {local_port}: {out!r}")


def wait_gone(kube: Kube, namespace: str, selector: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while kube.pods(namespace, selector):
        if time.monotonic() > deadline:
            raise AssertionError(f"pods {selector} in {namespace} still there after {timeout} s")
        time.sleep(0.5)
