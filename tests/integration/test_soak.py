"""`make soak` for one minute: the all-in-one deployment under saharaclient
CRUD while a worker is killed at 20 s and 40 s and the API reloaded (HUP) at
30 s. Same code and checks as the 10-minute run (docs/soak.md); the PSS bound
is looser, a minute being mostly warm-up."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from harness.stack import ensure_project, keystone_session
from soak import report
from soak.run import PROJECT, Plan, soak

PLAN = replace(Plan(), seconds=60, warmup=10, pss_growth=1.5)


@pytest.mark.timeout(300)
def test_one_minute_soak_with_kills_and_a_reload(sahara_conf, openrc, tmp_path) -> None:
    project_id = ensure_project(openrc, PROJECT, "make soak")
    results = soak(sahara_conf, tmp_path, project_id, lambda: keystone_session(openrc, PROJECT), PLAN, print)
    report.write(results, tmp_path)
    summary = {k: results[k] for k in ("requests", "objects", "supervision")}
    print(f"\n[soak 60 s] {json.dumps(summary)}\nPSS {results['pss'].get('ratio')}; report {tmp_path / 'soak.md'}")
    assert [e["kind"] for e in results["events"]] == ["kill", "reload", "kill"]
    assert results["requests"]["ok"] > 100, "the load ran"
    assert results["objects"]["rows_expected"] > 0
    failed = [check for check, ok in results["checks"].items() if not ok]
    assert failed == [], f"{failed}; unexplained failures: {[f for f in results['failures'] if not f['kill_pid']]}"
    assert (tmp_path / "soak" / "pss.png").read_bytes().startswith(b"\x89PNG")
