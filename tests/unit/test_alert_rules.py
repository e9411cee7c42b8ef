"""The alert rules and the Grafana dashboard without a live API: promtool
checks the rules and runs their unit tests at the production durations
(sahara-api-alerts.test.yml: each alert fires, stays quiet below its
threshold, resolves); every runbook link lands on a section of
docs/troubleshooting.md; every metric they use is one the exporter serves.
tests/integration/test_alerts.py proves them against a real Prometheus."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from harness import ROOT
from harness.stack import ensure_packages

RULES = ROOT / "deploy" / "prometheus" / "sahara-api-alerts.yml"
UNIT_TESTS = Path(__file__).resolve().parent / "sahara-api-alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "sahara-api-dashboard.json"
TROUBLESHOOTING = ROOT / "docs" / "troubleshooting.md"
EXPORTER = (ROOT / "sahara_api_metrics.py").read_text()
RULE_LIST = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]


def promtool(*args: str) -> subprocess.CompletedProcess:
    ensure_packages("prometheus")  # Debian's prometheus package ships promtool
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=UNIT_TESTS.parent)


def test_promtool_check_rules() -> None:
    out = promtool("check", "rules", str(RULES))
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_unit_tests_at_production_durations() -> None:
    out = promtool("test", "rules", UNIT_TESTS.name)
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_unit_test() -> None:
    tested = {
        t["alertname"] for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"] for t in case["alert_rule_test"]
    }
    assert tested == {r["alert"] for r in RULE_LIST}


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    heads = re.findall(r"^#+ (.+)$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("rule", RULE_LIST, ids=lambda r: r["alert"])
def test_alert_has_summary_severity_and_a_runbook_section(rule: dict) -> None:
    assert rule["labels"]["severity"] in ("critical", "warning")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    page, anchor = rule["annotations"]["runbook_url"].split("#")
    assert page == "docs/troubleshooting.md"
    assert anchor == rule["alert"].lower()
    assert anchor in anchors(TROUBLESHOOTING.read_text()), f"add a `### {rule['alert']}` section to {page}"


def metric_names(promql: str) -> set[str]:
    return set(re.findall(r"\b(?:uwsgi|sahara_api)_\w+", promql))


def exported(name: str) -> bool:
    """In sahara_api_metrics.py, counters without their _total suffix."""
    return f'"{name}"' in EXPORTER or f'"{name.removesuffix("_total")}"' in EXPORTER


def test_rules_and_dashboard_use_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [r["expr"] for r in RULE_LIST] + [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*map(metric_names, exprs))
    assert {n for n in used if not exported(n)} == set()


def test_dashboard_shape() -> None:
    """What Grafana's sidecar and its import need: a uid, a Prometheus datasource
    variable every panel uses, unique panel ids, a query in every panel."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"] and all(t["expr"] for t in panel["targets"])
