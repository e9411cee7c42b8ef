"""`BENCH_QUICK=1 make bench` works: both contenders start, answer every
scenario and end up in the results file and the report. The figures
themselves are the benchmark's business (docs/benchmarks.md), not a test's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

SCENARIOS = ("cpu", "slow", "c1", "c1_memory", "memory", "cold_start", "respawn")


@pytest.mark.timeout(420)
def test_quick_bench_runs_both_contenders(stack, tmp_path) -> None:
    env = {**os.environ, "BENCH_QUICK": "1", "BENCH_OUT": str(tmp_path)}
    env.pop("BENCH_CONTENDERS", None)
    run = subprocess.run(
        [sys.executable, "-m", "bench"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400
    )
    print(run.stdout[-3000:])
    assert run.returncode == 0, run.stderr[-3000:]

    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert {"meta", *SCENARIOS} <= results.keys()
    assert results["meta"]["machine"]["cpus"] >= 1
    for scenario in SCENARIOS:  # cold starts also count the elastic variant's (C3)
        assert {"ours-2", "upstream-2"} <= {r["contender"] for r in results[scenario]}, scenario
    for row in results["cpu"]:
        assert row["requests"] > 0 and row["rps"] > 0, row
    for row in results["slow"]:
        assert row["slow_errors"] == 0 and row["fast"] > 0, row
    for row in results["c1"] + results["c3"]:
        assert row["bound_s"] >= 2 and row["fast"] > 0, row
    assert {r["contender"] for r in results["c3"]} == {"ours-2+elastic"}
    for row in results["memory"]:
        assert row["idle_mib"] > 0 and row["after_load_mib"] > 0, row

    report = (tmp_path / "benchmarks.md").read_text()
    assert "## Targets" in report and "ours-2" in report and "upstream-2" in report
    for png in ("rps_vs_workers.png", "p99_vs_concurrency.png", "pss.png", "c1_curve.png", "pss_vs_capability.png"):
        assert (tmp_path / "bench" / png).read_bytes().startswith(b"\x89PNG"), png
