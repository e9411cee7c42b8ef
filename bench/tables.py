"""The Markdown of docs/benchmarks.md that a run's figures make: the summary of
the targets, every table, and the few sentences that depend on the figures.
The prose around them is bench/benchmarks.md.tmpl (bench/report.py fills it)."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from bench.contenders import Contender
from bench.results import PATHS, Results, all_met
from bench.wedge import excerpt
from harness.figures import table


def mode(close: bool) -> str:
    return "close" if close else "keep-alive"


def fmt(x: float | None, digits: int = 1) -> str:
    if x is None or x != x:  # None or NaN
        return "–"
    return f"{x:.{digits}f}"


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def spread(stat: tuple[float, float, float], digits: int = 2) -> str:
    """median (min-max)"""
    med, lo, hi = stat
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def where(cell: dict, o: Contender, u: Contender) -> str:
    return f"{o.name}/{u.name} {cell['path']} {mode(cell['close'])} c={cell['conns']}"


def verdict_line(target: str, rows: list[dict], pair: Callable[[dict], str]) -> str:
    """A summary line of a target judged on every equal pair: met when every pair meets it."""
    return f"- {target}: {verdict(all_met([r['ok'] for r in rows]))}. " + "; ".join(map(pair, rows)) + "."


def c2_pair(r: dict) -> str:
    o, u = r["ours_pss"], r["upstream_pss"]
    return (
        f"{r['ours'].name} {o['after_load_mib']:.0f} vs {r['upstream'].name} {u['after_load_mib']:.0f} MiB = "
        f"{r['ratio']:.2f}x (idle {o['idle_mib']:.0f} vs {u['idle_mib']:.0f})"
    )


def c4_pair(r: dict) -> str:
    (o, u), (mo, mu) = (r["ours_s"], r["upstream_s"]), r["medians"]
    return (
        f"{r['ours'].name} {mo:.2f} s ({min(o):.2f}-{max(o):.2f}) vs "
        f"{r['upstream'].name} {mu:.2f} s ({min(u):.2f}-{max(u):.2f})"
    )


def summary(res: Results) -> str:
    """The summary lines of issue 22's targets, with their verdicts."""
    p, lines = res.plan, []

    # Efficiency: ours vs upstream at equal serving processes.
    cells = res.efficiency_cells()
    if cells:
        met = sum(1 for c, _, _ in cells if c["rps_ok"] and c["cpu_ok"])
        worst_rps = min(cells, key=lambda x: x[0]["rps_ratio"] or 0)
        worst_cpu = max(cells, key=lambda x: x[0]["cpu_ratio"] or 0)
        lines.append(
            f"- **Efficiency** (req/s >= {p['rps_ratio']}x and API CPU per request <= {p['cpu_ratio']}x upstream's at "
            f"equal serving processes, every path, client mode and concurrency): {verdict(res.efficiency_ok())}, "
            f"{met} of {len(cells)} cells. Lowest req/s ratio {fmt(worst_rps[0]['rps_ratio'], 2)}x "
            f"({where(*worst_rps)}), highest CPU ratio {fmt(worst_cpu[0]['cpu_ratio'], 2)}x ({where(*worst_cpu)}). "
            f"{spread_text(res)}"
        )

    # C1 on the default configuration, N = 16 .. 256.
    ours = res.c1_ours()
    if ours:
        parts = []
        for n in res.judged():
            pt = res.c1_point(ours.name, n)
            if pt:
                parts.append(
                    f"N={n}: {spread(pt['ratio'])}x the bound (target {res.ratio_limit(n)}x), fast p99 "
                    f"{spread(pt['p99'], 1)} ms (target {res.fast_limit_ms(n):.0f} ms), {pt['errors']} errors"
                )
            else:
                parts.append(f"N={n}: not measured")
        ok = res.c1_ok(ours.name)
        lines.append(f"- **C1** (slow bursts, {ours.name} as shipped): {verdict(ok)}. " + "; ".join(parts) + ".")
        for u in (c for c in res.c1_contenders() if c.kind == "upstream"):
            pts = [(n, res.c1_point(u.name, n)) for n in p["c1_ns"]]
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

    # DB: the burst on the default, and the chart's ceiling.
    burst = res.db_burst(ours.name) if ours else None
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
        lines.append(f"- **DB budget**: {verdict(res.db_ok(burst, budget))}. " + "; ".join(text) + ".")

    # C2 and C4 at equal workers.
    c2, c4 = res.c2(), res.c4()
    if c2:
        target = f"**C2** (PSS after the same load <= {p['c2_ratio']}x upstream's at equal workers)"
        lines.append(verdict_line(target, c2, c2_pair))
    if c4:
        target = f"**C4** (cold start to the first 200, median of {p['cold_starts']}, <= upstream's)"
        lines.append(verdict_line(target, c4, c4_pair))
        ph = phases(res)
        if ph:
            lines[-1] += " Ours, median end of each phase: " + ph + "."

    for w in res.d.get("wedged", []):
        lines.append(
            f"- **{w['contender']} wedged** in {w['phase']}: {w['what']}; dumped and killed in "
            f"{w['dump_and_kill_s']:g} s (section Wedged contenders)."
        )
    return "\n".join(lines) + "\n"


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
    runs = res.plan["repeats"]
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
    clusters = res.plan["clusters"]
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
        for n in res.plan["c1_ns"]:
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
        for n in res.plan["c1_ns"]:
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


def contenders_section(res: Results) -> str:
    return table(
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


def quiet_note(res: Results) -> str:
    meta, phases, quiet = res.d["meta"], res.d["phases"], res.plan["quiet_load"]
    q = meta["quiet"]
    seen = max([float(meta["loadavg_start"][0])] + [max(r["load_start"], r["load_end"]) for r in phases])
    if meta["quick"]:
        return (
            f"A quick run (BENCH_QUICK=1): it checks the harness, not the figures; load average {q['load']} at start.\n"
        )
    if not q["quiet"]:
        return (
            f"\n> **Not a quiet machine**: the bench waited {q['waited_s']} s (its limit) for a load average below "
            f"{quiet:g} and saw {q['load']} when it started, up to {seen:.2f} between phases (its own load "
            "counts there). Other jobs shared these cores: req/s are low and noisy, and the ratios less sure.\n"
        )
    return (
        f"The machine was quiet when it started: load average {q['load']} (below {quiet:g}) after waiting "
        f"{q['waited_s']} s; up to {seen:.2f} between phases, the bench's own load included.\n"
    )


def deaths(res: Results) -> str:
    """Worker deaths the bench did not cause, if any."""
    rows = res.d.get("unexpected_deaths")
    if not rows:
        return ""
    text = "\nWorker deaths the benchmark did not cause: " + ", ".join(f"{r['contender']} {r['count']}" for r in rows)
    return text + " (see the uWSGI log of the run).\n"


def c1_rules(res: Results) -> str:
    """C1's limits on all done / bound, per judged N."""
    return ", ".join(f"{res.ratio_limit(n)}x at N={n}" for n in res.judged())


def c1_unjudged(res: Results) -> str:
    """The N of the curve C1 does not judge, as " (N=32 is on the curve, not judged)"."""
    free = [f"N={n}" for n in res.plan["c1_ns"] if n not in res.judged()]
    if not free:
        return ""
    return f" ({' and '.join(free)} {'is' if len(free) == 1 else 'are'} on the curve, not judged)"
