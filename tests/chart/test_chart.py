"""The Helm chart without a cluster: lint, render with several values files,
validate every manifest against the Kubernetes schema offline, refuse bad
values with a clear message, and render the host's own deploy/ files."""

from __future__ import annotations

import configparser
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from harness.chart import CHART, KUBE_VERSION, ROOT, VALUES, find, helm, render
from harness.stack import ensure_packages
from harness.troubleshooting import assert_documented
from sahara_api_knobs import knob

pytestmark = pytest.mark.chart
VALUES_FILES = sorted(VALUES.glob("*.yaml"))


def test_lint_strict() -> None:
    out = helm("lint", "--strict", str(CHART), *[a for f in VALUES_FILES for a in ("-f", str(f))])
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("values", [None, *VALUES_FILES], ids=lambda v: v.stem if v else "defaults")
def test_renders_valid_kubernetes_manifests(values: Path | None, tmp_path: Path) -> None:
    text, docs = render(*(["-f", str(values)] if values else []))
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(text)
    validate = [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBE_VERSION, str(manifests)]
    out = subprocess.run(validate, capture_output=True, text=True, timeout=120)
    print(out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr)
    assert out.returncode == 0, out.stdout + out.stderr
    kinds = sorted(d["kind"] for d in docs)
    expected = {"ConfigMap", "Deployment", "Job", "PodDisruptionBudget", "Pod", "Service"}
    assert expected <= set(kinds)
    assert ("HorizontalPodAutoscaler" in kinds) == (values is not None and values.stem == "autoscaling")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("api.replicas=-1", "api.replicas: Must be greater than or equal to 0"),
        ("api.workers=many", "api.workers: Invalid type. Expected: integer, given: string"),
        ("api.workers=0", "api.workers: Must be greater than or equal to 1"),
        ("api.replica=3", "Additional property replica is not allowed"),
        ("keystone.interface=private", "keystone.interface: keystone.interface must be one of"),
        ("api.stopTimeoutSeconds=60", "api.stopTimeoutSeconds (60) must be above api.timeoutSeconds (90)"),
        ("metrics.port=0", "metrics.port: Must be greater than or equal to 1"),
        ("metrics.port=8386", "metrics.port (8386) is the API's port"),
        ("metrics.serviceMonitor.interval=often", "metrics.serviceMonitor.interval: Does not match pattern"),
        ("metrics.prometheusRule.runbookBaseUrl=docs.example.com", "metrics.prometheusRule.runbookBaseUrl: Does not"),
        ("api.front=router", "api.front: api.front must be one of"),
        ("api.tls.enabled=true", "api.tls.enabled needs api.tls.secretName"),
        ("api.elastic=true,api.workers=1", "api.elastic needs api.workers >= 2"),
        ("api.front=direct,api.tls.enabled=true,api.tls.secretName=s", "api.tls.enabled needs api.front=nginx"),
    ],
)
def test_bad_values_are_refused(setting: str, message: str) -> None:
    out = helm("template", "sahara", str(CHART), "--kube-version", KUBE_VERSION, "--set", setting)
    print(out.stderr.strip().splitlines()[-1])
    assert out.returncode != 0
    assert message in out.stderr
    assert_documented(next(line for line in out.stderr.splitlines() if message in line))


def test_configmap_holds_the_hosts_deploy_files() -> None:
    _, docs = render()
    data = find(docs, "ConfigMap")["data"]
    for name in ("uwsgi.ini", "api-paste.ini", "nginx.conf"):
        assert data[name] == (ROOT / "deploy" / name).read_text().rstrip("\n")


def test_packaged_chart_carries_the_files_not_links(tmp_path: Path) -> None:
    out = helm("package", str(CHART), "-d", str(tmp_path))
    assert out.returncode == 0, out.stderr
    (package,) = tmp_path.glob("sahara-api-*.tgz")
    with tarfile.open(package) as tar:
        for name in (
            "uwsgi.ini",
            "api-paste.ini",
            "prometheus/sahara-api-alerts.yml",
            "grafana/sahara-api-dashboard.json",
        ):
            member = tar.getmember(f"sahara-api/files/{Path(name).name}")
            assert member.isfile()
            assert tar.extractfile(member).read().decode() == (ROOT / "deploy" / name).read_text()


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_worker_count_and_threads_reach_the_api_pod() -> None:
    _, docs = render("--set", "api.workers=6", "--set", "api.threads=4")
    env = env_of(find(docs, "Deployment", "api")["spec"]["template"]["spec"]["containers"][0])
    assert env["SAHARA_API_WORKERS"] == "6" and env["SAHARA_API_THREADS"] == "4"


def test_api_pod_contract() -> None:
    """Probes, drain, grace period and security context as the issue asks."""
    _, docs = render()
    pod = find(docs, "Deployment", "api")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = env_of(c)
    assert c["startupProbe"]["httpGet"]["path"] == "/healthcheck"
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthcheck"
    assert "tcpSocket" in c["livenessProbe"], "liveness must not depend on the DB or the drain file"
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert "$SAHARA_API_DRAIN_FILE" in pre_stop[-1]
    sleep = int(pre_stop[-1].rsplit("sleep", 1)[1])
    readiness = c["readinessProbe"]
    assert sleep > readiness["periodSeconds"] * readiness["failureThreshold"], "drained before SIGTERM"
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > sleep + int(env["SAHARA_API_TIMEOUT"]), "grace > preStop + uWSGI mercy"
    assert pod["securityContext"]["runAsNonRoot"] is True
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["requests"] and c["resources"]["limits"]


def test_front_is_nginx_in_the_pod_and_one_value_turns_it_off() -> None:
    """The pod's uWSGI runs nginx itself (deploy/uwsgi.ini): no sidecar; the chart's nginx.conf is the host's."""
    _, docs = render()
    pod = find(docs, "Deployment", "api")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert env_of(c)["SAHARA_API_FRONT"] == "nginx" and "SAHARA_API_TLS_CERT" not in env_of(c)
    assert "/opt/sahara-api/deploy/nginx.conf" in {m["mountPath"] for m in c["volumeMounts"]}
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
    _, docs = render("--set", "api.front=direct")
    assert env_of(find(docs, "Deployment", "api")["spec"]["template"]["spec"]["containers"][0])["SAHARA_API_FRONT"] == (
        "direct"
    )


def test_tls_mounts_the_secret_and_probes_use_https() -> None:
    _, docs = render("-f", str(VALUES / "tls.yaml"))
    pod = find(docs, "Deployment", "api")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = env_of(c)
    mount = next(m for m in c["volumeMounts"] if m["name"] == "tls")
    assert mount["readOnly"] and env["SAHARA_API_TLS_CERT"] == f"{mount['mountPath']}/tls.crt"
    assert env["SAHARA_API_TLS_KEY"] == f"{mount['mountPath']}/tls.key"
    assert next(v for v in pod["volumes"] if v["name"] == "tls")["secret"]["secretName"] == "sahara-api-tls"
    assert c["startupProbe"]["httpGet"]["scheme"] == c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_existing_secret_replaces_the_rendered_one() -> None:
    _, docs = render("-f", str(VALUES / "existing-secret.yaml"))
    assert [d for d in docs if d["kind"] == "Secret"] == []
    for component in ("api", "engine"):
        pod = find(docs, "Deployment", component)["spec"]["template"]["spec"]
        assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "sahara-credentials"}}]
    job = find(docs, "Job", "db-sync")
    assert job["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "sahara-credentials"}}
    ]


def test_db_sync_runs_before_install_and_upgrade() -> None:
    _, docs = render()
    job = find(docs, "Job", "db-sync")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db-sync"]
    secret = find(docs, "Secret", "db-sync")
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )


def test_app_version_is_the_pinned_sahara() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert f"sahara=={chart['appVersion']}" in (ROOT / "requirements/runtime.txt").read_text().splitlines()


def test_metrics_reach_the_cluster_only() -> None:
    """The exporter listens on the pod IP; only a ClusterIP Service points at it,
    whatever the API's Service type; the ServiceMonitor is opt-in."""
    _, docs = render("--set", "service.type=LoadBalancer")
    c = find(docs, "Deployment", "api")["spec"]["template"]["spec"]["containers"][0]
    env = env_of(c)
    assert env["SAHARA_METRICS_HOST"] == "0.0.0.0"
    assert {"name": "metrics", "containerPort": int(env["SAHARA_METRICS_PORT"]), "protocol": "TCP"} in c["ports"]
    metrics = find(docs, "Service", "metrics")
    assert metrics["spec"]["type"] == "ClusterIP"
    assert metrics["spec"]["ports"] == [
        {"name": "metrics", "port": int(env["SAHARA_METRICS_PORT"]), "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert metrics["spec"]["selector"] == find(docs, "Deployment", "api")["spec"]["selector"]["matchLabels"]
    assert [p["name"] for p in find(docs, "Service", "api")["spec"]["ports"]] == ["http"], "not on the public Service"
    assert [d for d in docs if d["kind"] == "ServiceMonitor"] == []


def test_service_monitor_selects_the_metrics_service() -> None:
    _, docs = render("-f", str(VALUES / "metrics.yaml"))
    monitor, service = find(docs, "ServiceMonitor"), find(docs, "Service", "metrics")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert [d for d in docs if d["kind"] == "Service" and selector.items() <= d["metadata"]["labels"].items()] == [
        service
    ]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    assert service["spec"]["ports"][0]["port"] == 9400


def test_metrics_can_be_turned_off() -> None:
    _, docs = render("--set", "metrics.enabled=false", "--set", "metrics.serviceMonitor.enabled=true")
    c = find(docs, "Deployment", "api")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(c)["SAHARA_METRICS_PORT"] == "0"
    assert [p["name"] for p in c["ports"]] == ["http"]
    assert [d for d in docs if d["kind"] == "ServiceMonitor" or d["metadata"]["name"].endswith("-metrics")] == []


def rules_file() -> dict:
    return yaml.safe_load((ROOT / "deploy/prometheus/sahara-api-alerts.yml").read_text())


def test_prometheus_rule_is_the_hosts_rules_file(tmp_path: Path) -> None:
    """The PrometheusRule carries deploy/prometheus/sahara-api-alerts.yml with the
    ServiceMonitor's job (the metrics Service's name) and the runbook base, and
    promtool accepts what it renders (kubernetes-validate has no schema for the CRD)."""
    _, docs = render("-f", str(VALUES / "metrics.yaml"))
    rule = find(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    job = find(docs, "Service", "metrics")["metadata"]["name"]
    expected = rules_file()
    for r in expected["groups"][0]["rules"]:
        r["expr"] = r["expr"].replace('job="sahara-api"', f'job="{job}"')
        r["annotations"]["runbook_url"] = "https://docs.example.com/sahara-api/" + r["annotations"]["runbook_url"]
    assert rule["spec"] == expected
    rendered = tmp_path / "rendered-rules.yml"
    rendered.write_text(yaml.safe_dump(rule["spec"]))
    ensure_packages("prometheus")  # promtool
    out = subprocess.run(["promtool", "check", "rules", str(rendered)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_grafana_dashboard_is_the_hosts_file_for_the_sidecar() -> None:
    _, docs = render("-f", str(VALUES / "metrics.yaml"))
    (cm,) = (d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard"))
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "OpenStack"}
    assert cm["data"]["sahara-api-dashboard.json"] == (
        ROOT / "deploy/grafana/sahara-api-dashboard.json"
    ).read_text().rstrip("\n")


def test_alerts_and_dashboard_are_opt_in() -> None:
    _, docs = render()
    assert [d for d in docs if d["kind"] == "PrometheusRule" or d["metadata"]["name"].endswith("-dashboard")] == []
    _, docs = render("-f", str(VALUES / "metrics.yaml"), "--set", "metrics.enabled=false")
    assert [d for d in docs if d["kind"] == "PrometheusRule" or d["metadata"]["name"].endswith("-dashboard")] == []


def test_engine_stop_grace_is_one_value() -> None:
    """The engine's stop grace on a host (supervisord's stopwaitsecs) and in a pod
    (terminationGracePeriodSeconds) is the knob SAHARA_ENGINE_STOP_TIMEOUT (the
    chart's default is generated from it), above oslo.service's own 60 s bound.
    They were 30 s and 75 s before."""
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(ROOT / "deploy" / "supervisord.conf")
    assert conf["program:sahara-engine"]["stopwaitsecs"] == "%(ENV_SAHARA_ENGINE_STOP_TIMEOUT)s"
    assert knob("SAHARA_ENGINE_STOP_TIMEOUT").chart == "engine.terminationGracePeriodSeconds"
    assert int(knob("SAHARA_ENGINE_STOP_TIMEOUT").default) > 60
