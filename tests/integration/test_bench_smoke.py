"""`BENCH_QUICK=1 make bench` works: every phase runs against its contenders
and ends up in the results file and the report. The figures themselves are
the benchmark's business (docs/benchmarks.md), not a test's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness import ROOT


@pytest.mark.timeout(420)
def test_quick_bench_runs_every_phase(stack, tmp_path) -> None:
    env = {**os.environ, "BENCH_QUICK": "1", "BENCH_OUT": str(tmp_path)}
    for knob in ("BENCH_CONTENDERS", "BENCH_OURS_ENV", "BENCH_SECONDS", "BENCH_QUIET_WAIT"):
        env.pop(knob, None)
    run = subprocess.run(
        [sys.executable, "-m", "bench"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400
    )
    print(run.stdout[-3000:])
    assert run.returncode == 0, run.stderr[-3000:]

    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert results["meta"]["machine"]["cpus"] >= 1
    assert results["wedged"] == [], [(w["contender"], w["phase"], w["what"]) for w in results["wedged"]]
    contenders = {
        "cpu": {"ours-2", "upstream-1"},  # efficiency at equal serving processes
        "memory": {"ours-2", "upstream-2"},  # C2 at equal workers
        "cold_start": {"ours-2", "upstream-1", "upstream-2"},
        "respawn": {"ours-2", "upstream-2"},
        "c1": {"ours-2"},
        "db": {"ours-2"},
    }
    for scenario, names in contenders.items():
        assert names <= {r["contender"] for r in results[scenario]}, scenario
    for row in results["cpu"]:
        assert row["requests"] > 0 and row["rps"] > 0 and row["api_cpu_ms_per_req"] > 0, row
    assert {r["rep"] for r in results["cpu"]} == {1, 2}  # ABBA: the spread is measured
    for row in results["c1"]:
        assert row["bound_s"] >= 2 and row["fast"] > 0 and row["max_used_connections"] > 0, row
    for row in results["db"]:
        assert row["max_used_connections"] >= row["own_peak"] > 0, row
    for row in results["memory"]:
        assert row["idle_mib"] > 0 and row["after_load_mib"] > 0, row
    assert results["db_pool"]["api_ceiling"] is None or results["db_pool"]["api_ceiling"] > 0
    assert {r["phase"].split()[0] for r in results["phases"]} >= {"profile", "efficiency", "C1", "C2"}

    report = (tmp_path / "benchmarks.md").read_text()
    for heading in ("## Targets", "## Efficiency", "## C1", "## DB budget", "## C2 and C4", "## Wedged"):
        assert heading in report, heading
    for png in ("efficiency.png", "pss.png", "c1_curve.png", "pss_vs_capability.png"):
        assert (tmp_path / "bench" / png).read_bytes().startswith(b"\x89PNG"), png
