"""helm (installed by scripts/install-helm.sh when missing) and the rendered chart as Python objects."""

from __future__ import annotations

import subprocess

import yaml

from harness import ROOT

CHART = ROOT / "deploy" / "helm" / "sahara-api"
HELM = ROOT / ".venv" / "bin" / "helm"
VALUES = ROOT / "tests" / "chart" / "values"
# helm 3.9's default is 1.24; the chart needs >= 1.23 and is validated at 1.28.
KUBE_VERSION = "1.28.0"


def helm(*args: str) -> subprocess.CompletedProcess:
    if not HELM.exists():
        subprocess.run([str(ROOT / "scripts" / "install-helm.sh"), str(HELM)], check=True, timeout=600)
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120)


def render(*args: str, release: str = "sahara") -> tuple[str, list[dict]]:
    """`helm template` of the chart: the YAML text and its documents."""
    out = helm("template", release, str(CHART), "--kube-version", KUBE_VERSION, *args)
    assert out.returncode == 0, out.stderr
    return out.stdout, [d for d in yaml.safe_load_all(out.stdout) if d]


def find(docs: list[dict], kind: str, component: str | None = None) -> dict:
    matches = [
        d
        for d in docs
        if d["kind"] == kind
        and (component is None or d["metadata"]["labels"].get("app.kubernetes.io/component") == component)
    ]
    assert len(matches) == 1, f"{len(matches)} {kind}/{component}"
    return matches[0]
