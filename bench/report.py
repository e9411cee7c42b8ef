"""docs/benchmarks.md and its plots, from the results `make bench` wrote.

python -m bench.report docs/bench/results.json   # re-render without re-running
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.contenders import Contender, parse  # noqa: E402
from bench.wedge import excerpt  # noqa: E402
from harness.figures import table

BUSY_LOAD = 1.0  # load average above which the machine was not ours alone
# Efficiency, issue 22: ours / upstream at equal serving processes, every path, client mode and c.
RPS_RATIO, CPU_RATIO = 1.0, 1.05
# C1: all slow requests done within this many times the physical bound, per burst size judged.
C1_JUDGED = {16: 1.2, 64: 1.2, 128: 1.3, 256: 1.3}
C2_EQUAL_RATIO = 1.0  # PSS after the same load, ours / upstream at equal workers
C4_PHASE = "C2 and C4"  # the bench's phase whose cold starts C4 counts
PATHS = ("/v2/plugins", "/v2/clusters")


def c1_fast_limit_ms(n: int) -> float:
    """C1's fast GET p99 limit: 50 ms up to 16 slow requests, 100 ms above."""
    return 50.0 if n <= 16 else 100.0


def c1_ratio_limit(n: int) -> float:
    return C1_JUDGED.get(n, 1.3 if n > 64 else 1.2)


def mode(close: bool) -> str:
    return "close" if close else "keep-alive"


def fmt(x: float | None, digits: int = 1) -> str:
    if x is None or x != x:  # None or NaN
        return "–"
    return f"{x:.{digits}f}"


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def spread(stat: tuple[float, float, float], digits: int = 2) -> str:
    """median (min-max)"""
    med, lo, hi = stat
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


class Results:
    def __init__(self, data: dict) -> None:
        self.d = data
        plan = data["meta"]["plan"]
        pairs = [parse(pair.replace("/", ",")) for pair in plan["pairs"]]
        self.pairs = [(o, u) for o, u in (x for x in pairs if len(x) == 2)]
        self.equal = parse(plan["equal_workers"])
        seen = list(dict.fromkeys(r["contender"] for k in ("cpu", "memory", "cold_start", "c1") for r in data[k]))
        self.contenders = parse(",".join(seen))
        self.ours = [c for c in self.contenders if c.kind == "ours"]
        self.upstream = [c for c in self.contenders if c.kind == "upstream"]

    def runs(self, name: str, path: str, close: bool, conns: int) -> list[dict]:
        return [
            r
            for r in self.d["cpu"]
            if (r["contender"], r["path"], r["close"], r["connections"]) == (name, path, close, conns)
        ]

    def cpu(self, name: str, path: str, close: bool, conns: int) -> dict | None:
        """A contender's cell: mean req/s and CPU per request over its runs, their spread
        ((max - min) / mean), the worst p99 and the errors of all runs."""
        rows = self.runs(name, path, close, conns)
        if not rows:
            return None
        rps, cpu = [r["rps"] for r in rows], [r["api_cpu_ms_per_req"] for r in rows]
        return {
            "runs": len(rows),
            "rps": statistics.mean(rps),
            "cpu": statistics.mean(cpu),
            "rps_spread": (max(rps) - min(rps)) / statistics.mean(rps) if statistics.mean(rps) else None,
            "cpu_spread": (max(cpu) - min(cpu)) / statistics.mean(cpu) if statistics.mean(cpu) else None,
            "p50_ms": statistics.median(r["p50_ms"] for r in rows),
            "p99_ms": max(r["p99_ms"] for r in rows),
            "errors": sum(r["errors"] for r in rows),
            "machine_busy": statistics.mean(r["machine_busy"] for r in rows),
            "loadavg": max(r["loadavg"] for r in rows),
        }

    def cells(self) -> list[tuple[str, bool, int]]:
        conns = sorted({r["connections"] for r in self.d["cpu"]})
        return [(path, close, c) for path in PATHS for close in (True, False) for c in conns]

    def efficiency(self, o: Contender, u: Contender) -> list[dict]:
        """Per cell: ours and upstream, the ratios, and whether each target is met."""
        out = []
        for path, close, conns in self.cells():
            a, b = self.cpu(o.name, path, close, conns), self.cpu(u.name, path, close, conns)
            if not (a and b):
                continue
            q_rps, q_cpu = ratio(a["rps"], b["rps"]), ratio(a["cpu"], b["cpu"])
            out.append(
                {
                    "path": path,
                    "close": close,
                    "conns": conns,
                    "ours": a,
                    "upstream": b,
                    "rps_ratio": q_rps,
                    "cpu_ratio": q_cpu,
                    "rps_ok": q_rps is not None and q_rps >= RPS_RATIO and a["errors"] == 0,
                    "cpu_ok": q_cpu is not None and q_cpu <= CPU_RATIO,
                }
            )
        return out

    def memory(self, name: str) -> dict | None:
        return next((r for r in self.d["memory"] if r["contender"] == name), None)

    def cold(self, name: str, key: str = "seconds") -> list[float]:
        """C4's cold starts: those of the C2 and C4 phase, where each contender starts alone."""
        rows = [r for r in self.d["cold_start"] if r["contender"] == name and key in r]
        c4 = [r for r in rows if r.get("phase", "").startswith(C4_PHASE)]
        return [r[key] for r in c4 or rows]

    def respawn(self, name: str) -> list[dict]:
        return [r for r in self.d["respawn"] if r["contender"] == name]

    def c1_contenders(self) -> list[Contender]:
        names = list(dict.fromkeys(r["contender"] for r in self.d["c1"]))
        return parse(",".join(names))

    def c1_point(self, name: str, n: int, key: str = "c1") -> dict | None:
        """Median and spread (min, max) of a contender's bursts of n slow requests."""
        rows = [r for r in self.d.get(key, []) if r["contender"] == name and r["slow"] == n]
        if not rows:
            return None

        def stat(k: str) -> tuple[float, float, float]:
            xs = [r[k] for r in rows]
            return statistics.median(xs), min(xs), max(xs)

        return {
            "runs": len(rows),
            "all_done": stat("all_done_s"),
            "bound": stat("bound_s"),
            "ratio": stat("ratio"),
            "p99": stat("fast_p99_ms"),
            "errors": sum(r["errors"] for r in rows),
            "load": stat("loadavg"),
            "max_used": max(r.get("max_used_connections", 0) for r in rows),
            "cores_left": stat("cores_left"),
            "ratio_cores_left": statistics.median(r["all_done_s"] / r["bound_cores_left_s"] for r in rows),
        }

    def c1_meets(self, name: str, n: int, key: str = "c1") -> bool | None:
        pt = self.c1_point(name, n, key)
        if pt is None:
            return None
        return pt["ratio"][0] <= c1_ratio_limit(n) and pt["p99"][0] <= c1_fast_limit_ms(n) and not pt["errors"]

    def capability(self, name: str) -> int:
        """Largest burst for which this and every smaller one meets C1's rules (0: none)."""
        best = 0
        for n in self.d["meta"]["plan"]["c1_ns"]:
            if not self.c1_meets(name, n):
                break
            best = n
        return best

    def c1_memory(self, name: str) -> dict | None:
        return next((r for r in self.d.get("c1_memory", []) if r["contender"] == name), None)

    def db_budget(self) -> dict | None:
        """The chart's default pods x workers x the API ceiling, plus the engine's, against max_connections."""
        pool, chart = self.d.get("db_pool"), self.d["meta"].get("chart")
        if not pool or not chart:
            return None
        api, engine = pool["api_ceiling"], pool["conf_ceiling"]
        total = None
        if api is not None and engine is not None:
            total = chart["api_replicas"] * chart["api_workers"] * api + chart["engine_replicas"] * engine
        hpa = None if api is None or engine is None else chart["autoscaling_max_replicas"] * chart["api_workers"] * api
        limit = self.d["meta"].get("max_connections", 151)
        return {**chart, "api": api, "engine": engine, "total": total, "hpa_api": hpa, "limit": limit}


def where(cell: dict, o: Contender, u: Contender) -> str:
    return f"{o.name}/{u.name} {cell['path']} {mode(cell['close'])} c={cell['conns']}"


def targets(res: Results) -> tuple[str, dict]:
    """The summary lines of issue 22's targets, and their verdicts."""
    lines, figures = [], {}

    # Efficiency: ours vs upstream at equal serving processes.
    cells = [(c, o, u) for o, u in res.pairs for c in res.efficiency(o, u)]
    ok = None if not cells else all(c["rps_ok"] and c["cpu_ok"] for c, _, _ in cells)
    figures["efficiency"] = ok
    if cells:
        met = sum(1 for c, _, _ in cells if c["rps_ok"] and c["cpu_ok"])
        worst_rps = min(cells, key=lambda x: x[0]["rps_ratio"] or 0)
        worst_cpu = max(cells, key=lambda x: x[0]["cpu_ratio"] or 0)
        lines.append(
            f"- **Efficiency** (req/s >= {RPS_RATIO}x and API CPU per request <= {CPU_RATIO}x upstream's at equal "
            f"serving processes, every path, client mode and concurrency): {verdict(ok)}, {met} of {len(cells)} "
            f"cells. Lowest req/s ratio {fmt(worst_rps[0]['rps_ratio'], 2)}x ({where(*worst_rps)}), highest CPU "
            f"ratio {fmt(worst_cpu[0]['cpu_ratio'], 2)}x ({where(*worst_cpu)}). {spread_text(res)}"
        )

    # C1 on the default configuration, N = 16 .. 256.
    ours = next((c for c in res.c1_contenders() if c.kind == "ours"), None)
    ok = None
    if ours:
        parts, oks = [], []
        for n in C1_JUDGED:
            pt = res.c1_point(ours.name, n)
            oks.append(res.c1_meets(ours.name, n))
            if pt:
                parts.append(
                    f"N={n}: {spread(pt['ratio'])}x the bound (target {c1_ratio_limit(n)}x), fast p99 "
                    f"{spread(pt['p99'], 1)} ms (target {c1_fast_limit_ms(n):.0f} ms), {pt['errors']} errors"
                )
            else:
                parts.append(f"N={n}: not measured")
        ok = None if all(x is None for x in oks) else all(bool(x) for x in oks)
        lines.append(f"- **C1** (slow bursts, {ours.name} as shipped): {verdict(ok)}. " + "; ".join(parts) + ".")
        for u in (c for c in res.c1_contenders() if c.kind == "upstream"):
            pts = [(n, res.c1_point(u.name, n)) for n in res.d["meta"]["plan"]["c1_ns"]]
            last = [(n, pt) for n, pt in pts if pt][-1:]
            if last:
                n, pt = last[0]
                cap = res.capability(u.name)
                lines.append(
                    f"  {u.name}: meets C1's rules up to N={cap}" if cap else f"  {u.name}: meets C1's rules at no N"
                )
                lines[-1] += (
                    f"; at N={n} all done in {pt['all_done'][0]:.2f} s = {pt['ratio'][0]:.2f}x its bound, "
                    f"fast p99 {pt['p99'][0]:.0f} ms, {pt['errors']} errors."
                )
    figures["C1"] = ok

    # DB: the burst on the default, and the chart's ceiling.
    ok = None
    burst = next((r for r in res.d["db"] if ours and r["contender"] == ours.name), None)
    budget = res.db_budget()
    if burst or budget:
        text = []
        if burst:
            text.append(
                f"{burst['requests']} concurrent GET /v2/clusters on {burst['contender']}: {burst['errors']} errors, "
                f"MariaDB Max_used_connections {burst['max_used_connections']} ({burst['threads_connected_before']} "
                f"open before, other jobs included), {burst['contender']}'s own at most {burst['own_peak']}"
            )
        if budget:
            if budget["total"] is None:
                text.append(f"no ceiling: API worker {budget['api']}, engine {budget['engine']} (None: no limit)")
            else:
                text.append(
                    f"ceiling {budget['api_replicas']} pods x {budget['api_workers']} workers x {budget['api']} + "
                    f"{budget['engine_replicas']} engine x {budget['engine']} = {budget['total']} of max_connections "
                    f"{budget['limit']} (headroom {budget['limit'] - budget['total']})"
                )
        ok = (burst is None or burst["errors"] == 0) and (
            budget is None or (budget["total"] is not None and budget["total"] <= budget["limit"])
        )
        lines.append(f"- **DB budget**: {verdict(ok)}. " + "; ".join(text) + ".")
    figures["DB"] = ok

    # C2 and C4 at equal workers.
    pairs = [
        (o, u)
        for o in res.equal
        if o.kind == "ours"
        for u in res.equal
        if u.kind == "upstream" and u.workers == o.workers
    ]
    ok, parts = None, []
    for o, u in pairs:
        mo, mu = res.memory(o.name), res.memory(u.name)
        if mo and mu:
            q = mo["after_load_mib"] / mu["after_load_mib"]
            ok = (ok is not False) and q <= C2_EQUAL_RATIO
            parts.append(
                f"{o.name} {mo['after_load_mib']:.0f} vs {u.name} {mu['after_load_mib']:.0f} MiB = {q:.2f}x "
                f"(idle {mo['idle_mib']:.0f} vs {mu['idle_mib']:.0f})"
            )
    if parts:
        lines.append(
            f"- **C2** (PSS after the same load <= {C2_EQUAL_RATIO}x upstream's at equal workers): {verdict(ok)}. "
            + "; ".join(parts)
            + "."
        )
    figures["C2"] = ok
    ok, parts = None, []
    for o, u in pairs:
        co, cu = res.cold(o.name), res.cold(u.name)
        if co and cu:
            mo, mu = statistics.median(co), statistics.median(cu)
            ok = (ok is not False) and mo <= mu
            parts.append(
                f"{o.name} {mo:.2f} s ({min(co):.2f}-{max(co):.2f}) vs "
                f"{u.name} {mu:.2f} s ({min(cu):.2f}-{max(cu):.2f})"
            )
    if parts:
        lines.append(
            f"- **C4** (cold start to the first 200, median of {res.d['meta']['plan']['cold_starts']}, <= upstream's): "
            f"{verdict(ok)}. " + "; ".join(parts) + "."
        )
        ph = phases(res)
        if ph:
            lines[-1] += " Ours, median end of each phase: " + ph + "."
    figures["C4"] = ok

    for w in res.d.get("wedged", []):
        lines.append(
            f"- **{w['contender']} wedged** in {w['phase']}: {w['what']}; dumped and killed in "
            f"{w['dump_and_kill_s']:g} s (section Wedged contenders)."
        )
    return "\n".join(lines) + "\n", figures


def spread_text(res: Results) -> str:
    """How far two runs of the same contender and cell differ: the noise floor of the ratios."""
    out = []
    for key, label in (("rps_spread", "req/s"), ("cpu_spread", "CPU/req")):
        xs = sorted(
            x
            for c in res.contenders
            for path, close, conns in res.cells()
            if (cell := res.cpu(c.name, path, close, conns)) and cell["runs"] > 1 and (x := cell[key]) is not None
        )
        if xs:
            out.append(f"{label} median {100 * statistics.median(xs):.0f} %, max {100 * xs[-1]:.0f} %")
    if not out:
        return ""
    runs = res.d["meta"]["plan"]["repeats"]
    return f"Spread between the {runs} runs of one contender in one cell, (max - min) / mean: " + "; ".join(out) + "."


def efficiency_section(res: Results) -> str:
    out = []
    for o, u in res.pairs:
        cells = res.efficiency(o, u)
        if not cells:
            continue
        out.append(f"\n#### {o.name} vs {u.name} ({o.serving} serving processes each)\n\n")
        rows = []
        for c in cells:
            a, b = c["ours"], c["upstream"]
            miss = [k for k, ok in (("req/s", c["rps_ok"]), ("CPU", c["cpu_ok"])) if not ok]
            rows.append(
                [
                    f"GET {c['path']}",
                    mode(c["close"]),
                    str(c["conns"]),
                    fmt(a["rps"]),
                    fmt(b["rps"]),
                    fmt(c["rps_ratio"], 2),
                    fmt(a["cpu"], 2),
                    fmt(b["cpu"], 2),
                    fmt(c["cpu_ratio"], 2),
                    "met" if not miss else "**not met** (" + ", ".join(miss) + ")",
                ]
            )
        out.append(
            table(
                [
                    "request",
                    "client",
                    "c",
                    f"{o.name} req/s",
                    f"{u.name} req/s",
                    "ratio",
                    f"{o.name} CPU ms/req",
                    f"{u.name} CPU ms/req",
                    "ratio",
                    "targets",
                ],
                rows,
            )
        )
    return "".join(out) or "Not measured in this run.\n"


def cpu_section(res: Results) -> str:
    """Every contender's cells in full: the runs' mean, the spread, the worst p99, errors."""
    out = []
    for path in PATHS:
        for close in (True, False):
            rows = []
            for c in res.contenders:
                for conns in sorted({x for p, cl, x in res.cells() if p == path and cl == close}):
                    r = res.cpu(c.name, path, close, conns)
                    if r:
                        rows.append(
                            [
                                c.name,
                                str(conns),
                                fmt(r["rps"]),
                                pct(r["rps_spread"]) if r["runs"] > 1 else "–",
                                fmt(r["p50_ms"]),
                                fmt(r["p99_ms"]),
                                str(r["errors"]),
                                fmt(r["cpu"], 2),
                                pct(r["cpu_spread"]) if r["runs"] > 1 else "–",
                                f"{r['machine_busy'] * 100:.0f}%",
                                fmt(r["loadavg"], 2),
                            ]
                        )
            if rows:
                out.append(f"\n#### GET {path}, {'`Connection: close`' if close else 'keep-alive'}\n\n")
                out.append(
                    table(
                        [
                            "contender",
                            "conns",
                            "req/s",
                            "spread",
                            "p50 ms",
                            "p99 ms (worst run)",
                            "errors",
                            "API CPU ms/req",
                            "spread",
                            "machine busy",
                            "load average",
                        ],
                        rows,
                    )
                )
    d = res.d
    clusters = d["meta"]["plan"]["clusters"]
    wrong = [r for r in d["cpu"] if r.get("clusters_after", clusters) != clusters]
    if wrong:
        out.append(
            "\n**Warning**: the number of clusters changed during "
            + ", ".join(f"{r['contender']} c={r['connections']}" for r in wrong)
            + " (another job wiped the clusters table): those `/v2/clusters` rows are not comparable.\n"
        )
    return "".join(out)


def db_section(res: Results) -> str:
    rows = [
        [
            r["contender"],
            str(r["requests"]),
            fmt(r["seconds"], 2),
            fmt(r["p50_ms"]),
            fmt(r["p99_ms"]),
            str(r["errors"]),
            str(r["threads_connected_before"]),
            str(r["max_used_connections"]),
            str(r["own_before"]),
            str(r["own_peak"]),
            fmt(r["loadavg"], 2),
        ]
        for r in res.d["db"]
    ]
    text = (
        table(
            [
                "contender",
                "concurrent requests",
                "all answered s",
                "p50 ms",
                "p99 ms",
                "errors",
                "MariaDB connections open before",
                "Max_used_connections",
                "own DB connections before",
                "own DB connections, peak",
                "load average",
            ],
            rows,
        )
        if rows
        else "No DB burst in this run.\n"
    )
    c1 = []
    for c in res.c1_contenders():
        for n in res.d["meta"]["plan"]["c1_ns"]:
            pt = res.c1_point(c.name, n)
            if pt:
                c1.append(f"{c.name} N={n} {pt['max_used']}")
    if c1:
        text += "\nMariaDB's Max_used_connections during the C1 bursts (highest of the runs): " + ", ".join(c1) + ".\n"
    pool, budget = res.d.get("db_pool"), res.db_budget()
    if pool and budget:
        text += (
            f"\nThe ceiling: one API worker's SQLAlchemy pool as the app configures it ({pool['pool']}, size "
            f"{pool['pool_size']}, overflow {pool['max_overflow']}: at most {fmt_limit(budget['api'])} connections; "
            f"bench/profile_app.py reads it from the app sahara_wsgi_entry builds), the engine's from sahara.conf's "
            f"[database] (max_pool_size {pool['conf_max_pool_size']} + max_overflow {pool['conf_max_overflow']} = "
            f"{fmt_limit(budget['engine'])}). The chart's defaults (values.yaml): {budget['api_replicas']} API pods x "
            f"{budget['api_workers']} workers and {budget['engine_replicas']} engine pod: "
            f"{fmt_limit(budget['total'])} connections at most, against MariaDB's max_connections "
            f"{budget['limit']} (151 is its default). At the autoscaler's {budget['autoscaling_max_replicas']} pods "
            f"the API alone may open {fmt_limit(budget['hpa_api'])}.\n"
        )
    return text


def fmt_limit(x: int | None) -> str:
    return "no limit" if x is None else str(x)


def wedged_section(res: Results) -> str:
    rows = res.d.get("wedged", [])
    if not rows:
        return "None in this run.\n"
    out = []
    for w in rows:
        out.append(
            f"**{w['contender']}**, {w['phase']}: {w['what']}. Listen queue (`ss -ltn`: Recv-Q waiting, Send-Q "
            f"backlog): `{w['listen_queue'] or '-'}`. Dumped and SIGKILLed in {w['dump_and_kill_s']:g} s. "
            "The top of each process's first thread, and where its threads wait (the whole dumps: `wedged` in "
            "results.json):\n\n"
        )
        for pid, dump in w["dumps"].items():
            out.append(f"```\npid {pid}: {excerpt(dump)}\n```\n\n")
    return "".join(out)


def phases_section(res: Results) -> str:
    rows = [
        [r["phase"], fmt(r["seconds"], 0), fmt(r["load_start"], 2), fmt(r["load_end"], 2)]
        for r in res.d.get("phases", [])
    ]
    return table(["phase", "seconds", "load average at start", "at end"], rows)


def memory_section(res: Results) -> str:
    rows = []
    for c in res.equal:
        m = res.memory(c.name)
        if m:
            rows.append(
                [c.name, str(m["processes"]), fmt(m["idle_mib"], 0), fmt(m["after_load_mib"], 0)]
                + [fmt(m["after_load_mib"] / c.serving, 0)]
            )
    return table(["contender", "processes", "PSS idle MiB", "PSS after load MiB", "per serving process MiB"], rows)


def overhead(res: Results) -> str:
    """Server CPU per request over the app's own (the in-process profile)."""
    prof = res.d.get("profile") or {}
    parts = []
    for path, r in prof.items():
        for kind, cs in (("ours", res.ours), ("upstream", res.upstream)):
            names = {c.name for c in cs}
            xs = [x["api_cpu_ms_per_req"] for x in res.d["cpu"] if x["contender"] in names and x["path"] == path]
            if xs:
                parts.append(f"{path} {kind} {statistics.median(xs) - r['cpu_ms_per_req']:+.2f} ms")
    if not parts:
        return ""
    return "Server CPU per request over the app's own in-process cost (median over runs): " + ", ".join(parts) + "."


def phases(res: Results) -> str:
    """Median end of each start phase of ours, from uWSGI's log lines (bench PHASES)."""
    rows = [r["phases"] for r in res.d["cold_start"] if r.get("phases") and r["contender"].startswith("ours")]
    if not rows:
        return ""
    out = []
    for key, label in (("checks", "launcher checks + exec"), ("app", "app built"), ("fork", "first worker forked")):
        xs = [r[key] for r in rows if key in r]
        if xs:
            out.append(f"{label} {statistics.median(xs):.2f} s")
    first = [r["seconds"] for r in res.d["cold_start"] if r["contender"].startswith("ours")]
    out.append(f"first 200 {statistics.median(first):.2f} s")
    return ", ".join(out)


def c1_section(res: Results, key: str = "c1") -> str:
    names = list(dict.fromkeys(r["contender"] for r in res.d.get(key, [])))
    rows = []
    for name in names:
        for n in res.d["meta"]["plan"]["c1_ns"]:
            pt = res.c1_point(name, n, key)
            if not pt:
                continue
            ok = res.c1_meets(name, n, key)
            rows.append(
                [
                    name,
                    str(n),
                    str(pt["runs"]),
                    spread(pt["all_done"]),
                    spread(pt["bound"]),
                    spread(pt["ratio"]),
                    spread(pt["p99"], 1),
                    str(pt["errors"]),
                    spread(pt["load"], 1),
                    spread(pt["cores_left"]) if pt["cores_left"] else "–",
                    fmt(pt["ratio_cores_left"], 2),
                    "yes" if ok else "no",
                ]
            )
    return table(
        [
            "contender",
            "slow N",
            "runs",
            "all done s",
            "bound s",
            "all done / bound",
            "fast p99 ms",
            "errors",
            "load average",
            "cores left by other jobs",
            "all done / bound on those cores",
            "meets C1's rules",
        ],
        rows,
    )


def c1_memory_section(res: Results) -> str:
    rows = []
    for c in res.c1_contenders():
        m = res.c1_memory(c.name)
        if m:
            cap = res.capability(c.name)
            rows.append([c.name, c.label(), fmt(m["idle_mib"], 0), fmt(m["peak_mib"], 0), str(cap) if cap else "none"])
    return table(["contender", "configuration", "PSS idle MiB", "PSS after the bursts MiB", "meets C1 up to N"], rows)


def c1_plots(res: Results, out: Path) -> list[str]:
    ns = res.d["meta"]["plan"]["c1_ns"]
    colors = {"ours": "tab:blue", "upstream": "tab:orange"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for c in res.c1_contenders():
        pts = [(n, res.c1_point(c.name, n)) for n in ns]
        pts = [(n, pt) for n, pt in pts if pt]
        if not pts:
            continue
        style = "-o" if c.kind == "ours" else "--s"
        alpha = 1.0 if c.kind == "ours" else 0.6
        for ax, k in zip(axes, ("ratio", "p99"), strict=True):
            med = [pt[k][0] for _, pt in pts]
            err = [
                [m - pt[k][1] for m, (_, pt) in zip(med, pts, strict=True)],
                [pt[k][2] - m for m, (_, pt) in zip(med, pts, strict=True)],
            ]
            ax.errorbar(
                [n for n, _ in pts],
                med,
                yerr=err,
                fmt=style,
                color=colors[c.kind],
                alpha=alpha,
                label=c.name,
                capsize=3,
            )
    judged = sorted(C1_JUDGED)
    axes[0].plot(judged, [c1_ratio_limit(n) for n in judged], "k:", lw=1, label="C1 limits")
    axes[0].set_ylabel("all slow done / physical bound")
    axes[0].set_title("all-done time against 2 s + CPU-s / cores")
    axes[1].plot(judged, [c1_fast_limit_ms(n) for n in judged], "k:", lw=1, label="C1 limits")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("fast GET p99 (ms)")
    axes[1].set_title("fast GETs during the burst")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(ns), [str(n) for n in ns])
        ax.set_xlabel("concurrent slow requests (2 s RPC)")
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "c1_curve.png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for c in res.c1_contenders():
        m = res.c1_memory(c.name)
        if m:
            ax.scatter(res.capability(c.name), m["peak_mib"], color=colors[c.kind], s=40)
            ax.annotate(
                c.name, (res.capability(c.name), m["peak_mib"]), fontsize=8, xytext=(4, 4), textcoords="offset points"
            )
    ax.set_xlabel("largest burst meeting C1 (0: none)")
    ax.set_ylabel("total PSS after the bursts (MiB)")
    ax.set_title("memory against capability")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "pss_vs_capability.png", dpi=90)
    plt.close(fig)
    return ["c1_curve.png", "pss_vs_capability.png"]


def time_section(res: Results) -> str:
    rows = []
    for c in res.contenders:
        cold, rs, listen = res.cold(c.name), res.respawn(c.name), res.cold(c.name, "listening_s")
        rows.append(
            [
                c.name,
                fmt(statistics.median(listen), 2) if listen else "–",
                fmt(statistics.median(cold), 2) if cold else "–",
                " / ".join(fmt(x, 2) for x in cold),
                " / ".join(fmt(r["new_process_s"], 3) for r in rs) or "–",
                " / ".join(fmt(r["accepting_s"], 3) for r in rs) or "–",
                str(sum(r["failed"] for r in rs)) + " / " + str(sum(r["requests"] for r in rs)),
                fmt(max((r["max_latency_ms"] for r in rs), default=None), 0),
            ]
        )
    return table(
        [
            "contender",
            "listening median s",
            "cold start median s",
            "cold start runs s",
            "kill -9: new process s",
            "kill -9: waiting for connections s",
            "failed / sent",
            "max latency ms",
        ],
        rows,
    )


def profile_section(res: Results) -> str:
    prof = res.d.get("profile") or {}
    if not prof:
        return "Not measured in this run.\n"
    groups: list[str] = []
    for r in prof.values():
        groups += [g for g in list(r["shares"])[:8] if g not in groups]
    rows = [
        [f"GET {path}", fmt(r["cpu_ms_per_req"], 2), fmt(r["gc_ms_per_req"], 2)]
        + [f"{r['shares'].get(g, 0) * 100:.0f}%" for g in groups]
        for path, r in prof.items()
    ]
    return table(["request", "CPU ms/req", "of which GC ms"] + groups, rows)


def plots(res: Results, out: Path) -> list[str]:
    colors = {"ours": "tab:blue", "upstream": "tab:orange"}
    names = []

    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    conns = sorted({r["connections"] for r in res.d["cpu"]})
    shades = {c.name: 1.0 if i == 0 else 0.5 for i, pair in enumerate(res.pairs) for c in pair}
    for row, path in zip(axes, PATHS, strict=True):
        for ax, key, label in zip(row, ("rps", "cpu"), ("req/s", "API CPU ms per request"), strict=True):
            for o, u in res.pairs:
                for c in (o, u):
                    for close, style in ((True, "-o"), (False, "--s")):
                        pts = [(n, res.cpu(c.name, path, close, n)) for n in conns]
                        pts = [(n, r) for n, r in pts if r]
                        if pts:
                            ax.plot(
                                [n for n, _ in pts],
                                [r[key] for _, r in pts],
                                style,
                                color=colors[c.kind],
                                alpha=shades.get(c.name, 1.0),
                                label=f"{c.name} {mode(close)}",
                            )
            ax.set_xscale("log", base=2)
            ax.set_xticks(conns, [str(n) for n in conns])
            ax.set_xlabel("concurrent connections (wrk -c)")
            ax.set_ylabel(label)
            ax.set_ylim(bottom=0)
            ax.set_title(f"GET {path}")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "efficiency.png", dpi=90)
    plt.close(fig)
    names.append("efficiency.png")

    fig, ax = plt.subplots(figsize=(8, 4))
    mem = [(c, res.memory(c.name)) for c in res.equal]
    mem = [(c, m) for c, m in mem if m]
    xs = range(len(mem))
    ax.bar([x - 0.2 for x in xs], [m["idle_mib"] for _, m in mem], 0.4, label="idle", color="tab:gray")
    for kind in ("upstream", "ours"):
        mine = [(x, m) for x, (c, m) in zip(xs, mem, strict=True) if c.kind == kind]
        ax.bar(
            [x + 0.2 for x, _ in mine],
            [m["after_load_mib"] for _, m in mine],
            0.4,
            label=f"after load ({kind})",
            color=colors[kind],
        )
    ax.set_xticks(list(xs), [c.name for c, _ in mem])
    ax.set_ylabel("total PSS of all API processes (MiB)")
    if mem:
        ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "pss.png", dpi=90)
    plt.close(fig)
    names.append("pss.png")
    return names


def quiet_note(meta: dict, phases: list[dict]) -> str:
    q = meta["quiet"]
    seen = max([float(meta["loadavg_start"][0])] + [max(r["load_start"], r["load_end"]) for r in phases])
    if meta["quick"]:
        return (
            f"A quick run (BENCH_QUICK=1): it checks the harness, not the figures; load average {q['load']} at start.\n"
        )
    if not q["quiet"]:
        return (
            f"\n> **Not a quiet machine**: the bench waited {q['waited_s']} s (its limit) for a load average below "
            f"{BUSY_LOAD:g} and saw {q['load']} when it started, up to {seen:.2f} between phases (its own load "
            "counts there). Other jobs shared these cores: req/s are low and noisy, and the ratios less sure.\n"
        )
    return (
        f"The machine was quiet when it started: load average {q['load']} (below {BUSY_LOAD:g}) after waiting "
        f"{q['waited_s']} s; up to {seen:.2f} between phases, the bench's own load included.\n"
    )


def write(data: dict, out: Path) -> None:
    res = Results(data)
    meta = data["meta"]
    m = meta["machine"]
    plot_dir = out / "bench"
    plot_dir.mkdir(parents=True, exist_ok=True)
    images = plots(res, plot_dir) + c1_plots(res, plot_dir)
    summary, _ = targets(res)
    contenders = table(
        ["contender", "server", "api_workers", "serving processes"],
        [
            [
                c.name,
                "uWSGI (deploy/uwsgi.ini via sahara_api_launcher.py)"
                if c.kind == "ours"
                else "upstream `sahara-api` (oslo.service ProcessLauncher, eventlet.wsgi)",
                str(c.workers),
                str(c.serving),
            ]
            for c in res.contenders
        ],
    )
    ours_env = " ".join(f"`{k}={v}`" for k, v in meta["ours_env"].items())
    defaults = " ".join(f"`{x}`" for x in meta["defaults_env"])
    plan = meta["plan"]
    conns = ", ".join(map(str, plan["concurrency"]))
    text = f"""# Benchmarks: our uWSGI deployment vs Sahara's `sahara-api`

Generated by `{"BENCH_QUICK=1 " if meta["quick"] else ""}make bench` (bench/, {meta["duration_s"]:.0f} s) at commit
`{meta["commit"]}` on {meta["started"]}. Every figure below comes from that run; the raw results are in
[bench/results.json](bench/results.json). Re-run it to check them: the harness starts and stops every
server itself on the local stack (scripts/stack.sh), on loopback only, with bounded loads.
{quiet_note(meta, data["phases"])}
Our contenders ran deploy/defaults.env as shipped: {defaults}; the bench sets only the port, config file,
drain file and run directory of each, its worker count, and `SAHARA_METRICS_PORT=0` (upstream has no
exporter).
{"**With extra environment (BENCH_OURS_ENV)**: " + ours_env + "." if ours_env else ""}
{"Only these contenders ran (BENCH_CONTENDERS): " + meta["only"] + "." if meta.get("only") else ""}

## Targets (issue 22)

{summary}
[tuning.md](tuning.md) lists the knobs tried for each target and what they did.

## Machine and run

| | |
|---|---|
| CPU | {m["cpu_model"]}, {m["cpus"]} cores |
| RAM | {m["ram_gib"]} GiB |
| kernel / OS | {m["kernel"]} / {m["os"]} |
| Python | {m["python"]} |
| load average (1, 5, 15 min) | start {" ".join(meta["loadavg_start"])}, end {" ".join(meta["loadavg_end"])} |
| versions | {", ".join(f"{k} {v}" for k, v in meta["versions"].items())} |

MariaDB, RabbitMQ, memcached, Keystone, the load generator and the API all share these cores.
Each phase, its length and the load average around it:

{phases_section(res)}
## Contenders

Same stack, same `sahara.conf` (fake plugin, MariaDB through PyMySQL, a RabbitMQ vhost of the run's own,
keystonemiddleware with its token cache in memcached) and the same paste pipeline
(`deploy/api-paste.ini`; upstream gets it through `api_paste_config`). Upstream's parent process serves
requests too, so `api_workers=N` means N+1 serving processes: efficiency compares equal serving processes,
memory and cold start equal workers.

{contenders}
## Efficiency: req/s and CPU per request at equal serving processes

`wrk` ({meta["versions"]["wrk"]}) with a valid token, {plan["seconds"]:g} s per run after a warm-up, with
`Connection: close` (a new TCP connection per request) and with keep-alive, at {conns}
connections. Both contenders of a pair are up at once and each cell runs ours,
upstream, upstream, ours ({plan["repeats"]} runs each): a drift in the machine's load hits both alike. Figures
are the mean of the runs; "API CPU ms/req" is the user+system CPU of all the contender's processes (uWSGI
master, workers and its nginx front; upstream's parent and children) divided by the requests answered.
Targets: req/s >= {RPS_RATIO}x upstream's (and no errors), CPU per request <= {CPU_RATIO}x. `/v2/clusters`
lists the {plan["clusters"]} clusters of the benchmark's own Keystone project. {spread_text(res)}

![req/s and CPU per request](bench/{images[0]})
{efficiency_section(res)}
### Every run, per contender

"spread" is (max - min) / mean of the contender's runs in that cell; "machine busy" is the whole machine's
CPU use during the runs (the load generator, MariaDB, memcached and Keystone included).
{cpu_section(res)}
#### Where the CPU of a request goes

The app alone, called in-process without any HTTP server (bench/profile_app.py, cProfile with a CPU clock,
own time summed per package; same config, token and data): what no server choice can remove.
{overhead(res)}

{profile_section(res)}
## C1: bursts of slow requests

Bursts of N concurrent scale requests (`PUT /v2/clusters/ID`, whose validation makes a synchronous RPC that
harness/slow_engine.py answers after {plan["c1_delay"]:g} s, then the API answers 400) with a fast
`GET /v2/plugins` every {plan["fast_interval"] * 1000:.0f} ms meanwhile; each row is the median of
{plan["c1_runs"]} bursts with the (min-max) spread, after one unrecorded burst that sets up each worker's
RPC connections. The bound is physical: {plan["c1_delay"]:g} s plus the CPU the burst's requests used,
divided by the cores: the user+system CPU of all the contender's processes during the burst (from /proc,
workers born meanwhile included) minus the fast GETs' share (their count times the CPU of one, measured before
the curve). C1's rules: no error, all done within {", ".join(f"{c1_ratio_limit(n)}x at N={n}" for n in C1_JUDGED)}
of the bound, fast p99 <= 50 ms at N <= 16 and <= 100 ms above (N=32 is on the curve, not judged). A contender
whose median burst took more than 2x its bound runs no larger burst, and a burst over 3x is not repeated.
"cores left" is the cores minus what everything else used during the burst (whole-machine busy time from
/proc/stat, less the contender's and the load generator's CPU): printed to read a loaded run, not used in
the verdict. Each request times out after 60 s; a contender that answers nothing at all for 30 s is
wedged (below).

![C1 curve](bench/{images[2]})

{c1_section(res)}
Total PSS after the bursts against the largest burst that met C1's rules:

![PSS vs capability](bench/{images[3]})

{c1_memory_section(res)}
## DB budget

After each C1 curve, {plan["db_burst"]} concurrent `GET /v2/clusters` (each reads the DB), all sent at once
with a 30 s timeout. MariaDB's `Max_used_connections` is reset with `FLUSH STATUS` just before (it then
equals the connections open at that moment, Keystone's and other jobs' included); the contender's own DB
connections are counted from /proc every 50 ms.

{db_section(res)}
## C2 and C4: memory and cold start at equal workers

Each contender, alone: started, its PSS 1 s after the first 200 (idle), then the same load for every one
(`wrk`, {plan["seconds"]:g} s each: both paths, close and keep-alive, 16 connections) and its PSS again.
PSS is the total of `/proc/PID/smaps_rollup` over all its processes (uWSGI master, workers, nginx; upstream's
parent and children).

![PSS per contender](bench/{images[1]})

{memory_section(res)}
Cold start: from starting the command (our launcher's checks included) to the first 200 of an authenticated
`GET /v2/plugins`, polled every 10 ms; {plan["cold_starts"]} starts per contender, taken in turn so a change
of load hits every one; "listening" is when the port first accepts a TCP connection. Respawn: `kill -9` of
one worker while `GET /v2/plugins` runs at 20 req/s; "new process" is when the replacement appears,
"waiting for connections" when all its threads sleep and one is blocked in accept/epoll (from
/proc/PID/task/*/syscall); failed requests count from 1 s before the kill to 1 s after the replacement is ready.

{time_section(res)}
## Wedged contenders

A contender that answers nothing for 30 s during a burst, never answers its first request within 60 s of
its start, or answers no request of a `wrk` run right and then not two plain GETs (10 s each), is wedged: the bench
records `ss` of its listening port and a `py-spy dump` of each of its processes, SIGKILLs them all with their
process groups (TERM may be ignored), and goes on with the next contender.

{wedged_section(res)}"""
    if data.get("unexpected_deaths"):
        text += "\nWorker deaths the benchmark did not cause: " + ", ".join(
            f"{r['contender']} {r['count']}" for r in data["unexpected_deaths"]
        )
        text += " (see the uWSGI log of the run).\n"
    (out / "benchmarks.md").write_text(text)


if __name__ == "__main__":
    path = Path(sys.argv[1])
    write(json.loads(path.read_text()), path.parent.parent)
