"""docs/benchmarks.md and its plots, from the results `make bench` wrote. The
prose is bench/benchmarks.md.tmpl, filled with the run's own plan (its limits
and targets, saved in results.json: bench/plan.py), its figures and the tables
of bench/tables.py; the verdicts are bench/results.py's.

python -m bench.report docs/bench/results.json   # re-render without re-running
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import tables
from bench.plots import PNG, draw
from bench.results import Results

TEMPLATE = Path(__file__).with_name("benchmarks.md.tmpl")
WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def render(data: dict) -> str:
    """docs/benchmarks.md's text for a run's results."""
    res = Results(data)
    meta, plan = data["meta"], res.plan
    ours_env = " ".join(f"`{k}={v}`" for k, v in meta["ours_env"].items())
    values = {
        "meta": meta,
        "plan": plan,
        "machine": meta["machine"],
        "plots": PNG,
        "quick": "BENCH_QUICK=1 " if meta["quick"] else "",
        "quiet_note": tables.quiet_note(res),
        "defaults": " ".join(f"`{x}`" for x in meta["defaults_env"]),
        "ours_env": f"**With extra environment (BENCH_OURS_ENV)**: {ours_env}." if ours_env else "",
        "only": f"Only these contenders ran (BENCH_CONTENDERS): {meta['only']}." if meta.get("only") else "",
        "summary": tables.summary(res),
        "loadavg_start": " ".join(meta["loadavg_start"]),
        "loadavg_end": " ".join(meta["loadavg_end"]),
        "versions": ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "phases": tables.phases_section(res),
        "contenders": tables.contenders_section(res),
        "concurrency": ", ".join(map(str, plan["concurrency"])),
        "spread": tables.spread_text(res),
        "efficiency": tables.efficiency_section(res),
        "cpu": tables.cpu_section(res),
        "overhead": tables.overhead(res),
        "profile": tables.profile_section(res),
        "fast_interval_ms": plan["fast_interval"] * 1000,
        "c1_rules": tables.c1_rules(res),
        "c1_unjudged": tables.c1_unjudged(res),
        "c1": tables.c1_section(res),
        "c1_memory": tables.c1_memory_section(res),
        "db_sample_ms": plan["db_sample_s"] * 1000,
        "db": tables.db_section(res),
        "memory": tables.memory_section(res),
        "cold_start_poll_ms": plan["cold_start_poll_s"] * 1000,
        "times": tables.time_section(res),
        "check_tries": WORDS[plan["check_tries"]] if plan["check_tries"] < len(WORDS) else plan["check_tries"],
        "wedged": tables.wedged_section(res),
        "deaths": tables.deaths(res),
    }
    # The template file ends with a newline of its own; the text ends with its last section's.
    return TEMPLATE.read_text().removesuffix("\n").format_map(values)


def write(data: dict, out: Path) -> None:
    """benchmarks.md under `out`, its plots under out/bench."""
    plot_dir = out / "bench"
    plot_dir.mkdir(parents=True, exist_ok=True)
    draw(Results(data), plot_dir)
    (out / "benchmarks.md").write_text(render(data))


if __name__ == "__main__":
    path = Path(sys.argv[1])
    write(json.loads(path.read_text()), path.parent.parent)
