"""docs/benchmarks.md is what bench/report.py renders from docs/bench/results.json
(the prose of bench/benchmarks.md.tmpl filled with that run's plan and figures):
a template, table or verdict changed without re-rendering fails here. Re-render
with `.venv/bin/python -m bench.report docs/bench/results.json`."""

from __future__ import annotations

import json
from dataclasses import asdict

from bench.plan import FULL
from bench.report import render
from harness import ROOT

RESULTS = ROOT / "docs" / "bench" / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"


def test_benchmarks_md_is_the_render_of_the_committed_results() -> None:
    assert render(json.loads(RESULTS.read_text())) == DOC.read_text()


def test_a_plan_saved_today_renders_like_the_defaults_an_older_run_takes() -> None:
    """The committed run predates the plan's limits and targets: it takes their defaults.
    The same run with the whole of today's plan saved (as JSON makes it) reads the same."""
    data = json.loads(RESULTS.read_text())
    assert "wedge_s" not in data["meta"]["plan"]
    data["meta"]["plan"] = json.loads(json.dumps(asdict(FULL)))
    assert render(data) == DOC.read_text()
