"""docs/benchmarks.md and its plots, from the results `make bench` wrote.

python -m bench.report docs/bench/results.json   # re-render without re-running
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.contenders import Contender, parse  # noqa: E402

BUSY_LOAD = 1.0  # load average above which the machine was not ours alone
GUARD_RPS_RATIO = 0.95  # ours / upstream req/s at equal serving processes, concurrency >= 4
C1_RATIO = 1.2  # all slow requests done within this many times the physical bound
C1_JUDGED = (16, 64)  # the burst sizes C1 is judged at; the others are the curve
C2_PSS_RATIO, C2_EQUAL_RATIO = 0.2, 1.0
C3_IDLE_RATIO = 0.5


def c1_fast_limit_ms(n: int) -> float:
    """C1's fast GET p99 limit: 50 ms up to 16 slow requests, 100 ms above."""
    return 50.0 if n <= 16 else 100.0


def fmt(x: float | None, digits: int = 1) -> str:
    if x is None or x != x:  # None or NaN
        return "–"
    return f"{x:.{digits}f}"


def table(head: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


class Results:
    def __init__(self, data: dict) -> None:
        self.d = data
        plan = data["meta"]["plan"]
        self.contenders = parse(plan["contenders"])
        self.ours = [c for c in self.contenders if c.kind == "ours"]
        self.upstream = [c for c in self.contenders if c.kind == "upstream"]

    def cpu(self, name: str, path: str, close: bool, conns: int) -> dict | None:
        for r in self.d["cpu"]:
            if (r["contender"], r["path"], r["close"], r["connections"]) == (name, path, close, conns):
                return r
        return None

    def pairs(self) -> list[tuple[str, Contender, Contender]]:
        """(how, ours, upstream): equal api_workers, then equal serving processes."""
        out = []
        for o in self.ours:
            for u in self.upstream:
                if o.workers == u.workers:
                    out.append(("same api_workers", o, u))
        for o in self.ours:
            for u in self.upstream:
                if o.serving == u.serving:
                    out.append(("same serving processes", o, u))
        return out

    def memory(self, name: str) -> dict | None:
        return next((r for r in self.d["memory"] if r["contender"] == name), None)

    def cold(self, name: str, key: str = "seconds") -> list[float]:
        return [r[key] for r in self.d["cold_start"] if r["contender"] == name and key in r]

    def respawn(self, name: str) -> list[dict]:
        return [r for r in self.d["respawn"] if r["contender"] == name]

    def c1_contenders(self) -> list[Contender]:
        return parse(self.d["meta"]["plan"]["c1_contenders"])

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
            "cores_left": stat("cores_left") if all("cores_left" in r for r in rows) else None,
            "ratio_cores_left": statistics.median(r["all_done_s"] / r["bound_cores_left_s"] for r in rows)
            if all("bound_cores_left_s" in r for r in rows)
            else None,
        }

    def c1_meets(self, name: str, n: int, key: str = "c1") -> bool | None:
        pt = self.c1_point(name, n, key)
        if pt is None:
            return None
        return pt["ratio"][0] <= C1_RATIO and pt["p99"][0] <= c1_fast_limit_ms(n) and not pt["errors"]

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


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def spread(stat: tuple[float, float, float], digits: int = 2) -> str:
    """median (min-max)"""
    med, lo, hi = stat
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def targets(res: Results) -> tuple[str, dict]:
    """The C1..C4 and guard lines of the summary, and their verdicts."""
    d = res.d
    lines, figures = [], {}
    c1s = res.c1_contenders()
    ours = next((c for c in c1s if c.kind == "ours" and not c.variant), None)

    # C1: the default configuration, judged at 16 and 64 slow requests.
    ok = None
    if ours:
        parts, oks = [], []
        for n in C1_JUDGED:
            pt = res.c1_point(ours.name, n)
            oks.append(res.c1_meets(ours.name, n))
            if pt:
                parts.append(
                    f"N={n}: all done in {pt['all_done'][0]:.2f} s against a bound of {pt['bound'][0]:.2f} s = "
                    f"{spread(pt['ratio'])}x (target {C1_RATIO}x), fast p99 {spread(pt['p99'], 1)} ms "
                    f"(target {c1_fast_limit_ms(n):.0f} ms), {pt['errors']} errors"
                )
        ok = None if None in oks else all(oks)
        lines.append(f"- **C1** (concurrency, {ours.name} as shipped): {verdict(ok)}. " + "; ".join(parts) + ".")
        for u in (c for c in c1s if c.kind == "upstream"):
            cap = res.capability(u.name)
            pts = [(n, res.c1_point(u.name, n)) for n in d["meta"]["plan"]["c1_ns"]]
            last = [(n, pt) for n, pt in pts if pt][-1:]
            if last:
                n, pt = last[0]
                lines.append(f"  {u.name}: meets it up to N={cap}" if cap else f"  {u.name}: meets it at no N measured")
                lines[-1] += (
                    f"; at N={n} all done in {pt['all_done'][0]:.2f} s = {pt['ratio'][0]:.2f}x its bound, "
                    f"fast p99 {pt['p99'][0]:.0f} ms."
                )
    figures["C1"] = ok

    # C2: memory per capability, and at equal workers.
    mine = [(c, res.c1_memory(c.name)) for c in c1s]
    mine = [(c, m) for c, m in mine if m]
    meeting = {
        k: [(c, m) for c, m in mine if c.kind == k and all(res.c1_meets(c.name, n) for n in C1_JUDGED)]
        for k in ("ours", "upstream")
    }
    best = {k: min(v, key=lambda cm: cm[1]["peak_mib"]) for k, v in meeting.items() if v}
    ok = None
    if "ours" in best:
        o, mo = best["ours"]
        if "upstream" in best:
            u, mu = best["upstream"]
            q = mo["peak_mib"] / mu["peak_mib"]
            ok = q <= C2_PSS_RATIO
            text = f"{o.name} {mo['peak_mib']:.0f} MiB vs {u.name} {mu['peak_mib']:.0f} MiB = {q:.2f}x"
        else:
            ups = [(c, m) for c, m in mine if c.kind == "upstream"]
            biggest = max(ups, key=lambda cm: cm[0].workers, default=None)
            text = f"{o.name} {mo['peak_mib']:.0f} MiB meets C1; no upstream configuration measured does"
            if biggest:
                u, mu = biggest
                q = mo["peak_mib"] / mu["peak_mib"]
                ok = q <= C2_PSS_RATIO
                text += (
                    f" (the largest, {u.name} at {mu['peak_mib']:.0f} MiB, reaches N={res.capability(u.name)}): "
                    f"{q:.2f}x of it, a ratio that only falls as upstream adds the workers it would need"
                )
        lines.append(f"- **C2** (PSS per capability <= {C2_PSS_RATIO}x upstream): {verdict(ok)}. {text}.")
    elif mine:
        lines.append(
            f"- **C2** (PSS per capability <= {C2_PSS_RATIO}x upstream): not measured: no configuration of ours "
            "met C1 in this run (table below for the PSS of each)."
        )
    figures["C2"] = ok
    o4, u4 = res.memory("ours-4"), res.memory("upstream-4")
    ok = None
    if o4 and u4:
        q = o4["after_load_mib"] / u4["after_load_mib"]
        ok = q <= C2_EQUAL_RATIO
        lines.append(
            f"- **C2, equal workers** (ours-4 <= {C2_EQUAL_RATIO}x upstream-4 after load): {verdict(ok)}. "
            f"{o4['after_load_mib']:.0f} MiB vs {u4['after_load_mib']:.0f} MiB = {q:.2f}x "
            f"(idle {o4['idle_mib']:.0f} vs {u4['idle_mib']:.0f} MiB)."
        )
    figures["C2 equal"] = ok

    # C3: elastic workers from idle.
    rows = d.get("c3", [])
    ok = None
    if rows:
        name = rows[0]["contender"]
        n = rows[0]["slow"]
        pt = res.c1_point(name, n, "c3")
        idle = statistics.median(r["idle_mib"] for r in rows)
        refs = [(u.name, res.memory(u.name) or res.c1_memory(u.name)) for u in res.upstream + res.c1_contenders()]
        ref_name, ref_mem = next(
            ((k, m) for k, m in refs if m and k == "upstream-4"),
            next(((k, m) for k, m in refs if m and k.startswith("upstream")), ("upstream-4", None)),
        )
        ref = ref_mem["idle_mib"] if ref_mem else None
        q = idle / ref if ref else None
        back = [r["back_to_one_s"] for r in rows]
        ok = (
            q is not None
            and q <= C3_IDLE_RATIO
            and bool(res.c1_meets(name, n, "c3"))
            and all(r["idle_workers"] == 1 for r in rows)
            and None not in back
        )
        lines.append(
            f"- **C3** (elastic, {name}): {verdict(ok)}. Idle at {', '.join(str(r['idle_workers']) for r in rows)} "
            f"worker(s), PSS {idle:.0f} MiB = {fmt(q, 2)}x {ref_name} idle (target {C3_IDLE_RATIO}x of upstream-4); "
            f"a burst of {n} from idle: all done {spread(pt['ratio'])}x its bound, fast p99 {spread(pt['p99'], 1)} "
            f"ms, {pt['errors']} errors, {', '.join(str(r['workers_after']) for r in rows)} workers right after, "
            f"back to one after {', '.join(fmt(b, 1) for b in back)} s. Off by default (SAHARA_API_ELASTIC=0)."
        )
    figures["C3"] = ok

    # C4: cold start at equal workers.
    ok, parts = None, []
    for o in res.ours:
        u = next((x for x in res.upstream if x.workers == o.workers), None)
        co, cu = res.cold(o.name), res.cold(u.name) if u else []
        if co and cu:
            mo, mu = statistics.median(co), statistics.median(cu)
            ok = (ok is not False) and mo <= mu
            parts.append(
                f"{o.name} {mo:.2f} s ({min(co):.2f}-{max(co):.2f}) vs "
                f"{u.name} {mu:.2f} s ({min(cu):.2f}-{max(cu):.2f})"
            )
    if parts:
        lines.append(f"- **C4** (cold start to the first 200 <= upstream's): {verdict(ok)}. " + "; ".join(parts) + ".")
        ph = phases(res)
        if ph:
            lines[-1] += " Ours, median end of each phase: " + ph + "."
    figures["C4"] = ok

    # Guard: req/s at equal serving processes.
    ratios = []
    for how, o, u in res.pairs():
        if how != "same serving processes":
            continue
        for path in ("/v2/plugins", "/v2/clusters"):
            for close in (True, False):
                for conns in sorted({r["connections"] for r in d["cpu"] if r["path"] == path}):
                    a, b = res.cpu(o.name, path, close, conns), res.cpu(u.name, path, close, conns)
                    if a and b and conns >= 4:
                        where = f"{o.name}/{u.name} {path} {'close' if close else 'keep-alive'} c={conns}"
                        ratios.append((a["rps"] / b["rps"], where))
    ok = None if not ratios else min(q for q, _ in ratios) >= GUARD_RPS_RATIO
    figures["guard"] = ok
    if ratios:
        worst = min(ratios)
        lines.append(
            f"- **Throughput guard** (req/s >= {GUARD_RPS_RATIO}x upstream at equal serving processes, every "
            f"request, client mode and concurrency >= 4): {verdict(ok)}. Ratios from {worst[0]:.2f}x ({worst[1]}) "
            f"to {max(ratios)[0]:.2f}x ({max(ratios)[1]}). " + overhead(res)
        )
    return "\n".join(lines) + "\n", figures


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


def cpu_section(res: Results) -> str:
    d = res.d
    out = []
    for path in ("/v2/plugins", "/v2/clusters"):
        for close in (True, False):
            rows = [r for r in d["cpu"] if r["path"] == path and r["close"] == close]
            if not rows:
                continue
            out.append(f"\n#### GET {path}, {'`Connection: close`' if close else 'keep-alive'}\n\n")
            out.append(
                table(
                    ["contender", "conns", "req/s", "p50 ms", "p99 ms", "errors", "API CPU ms/req", "machine busy"],
                    [
                        [
                            r["contender"],
                            str(r["connections"]),
                            fmt(r["rps"]),
                            fmt(r["p50_ms"]),
                            fmt(r["p99_ms"]),
                            str(r["errors"]),
                            fmt(r["api_cpu_ms_per_req"], 2),
                            f"{r['machine_busy'] * 100:.0f}%",
                        ]
                        for r in rows
                    ],
                )
            )
    ratios = []
    for how, o, u in res.pairs():
        for path in ("/v2/plugins", "/v2/clusters"):
            for close in (True, False):
                for conns in sorted({r["connections"] for r in d["cpu"] if r["path"] == path}):
                    a, b = res.cpu(o.name, path, close, conns), res.cpu(u.name, path, close, conns)
                    if a and b:
                        ratios.append(
                            [
                                f"{o.name} / {u.name} ({how})",
                                f"{path} {'close' if close else 'keep-alive'}",
                                str(conns),
                                fmt(ratio(a["rps"], b["rps"]), 2),
                                fmt(ratio(a["p99_ms"], b["p99_ms"]), 2),
                                fmt(ratio(a["api_cpu_ms_per_req"], b["api_cpu_ms_per_req"]), 2),
                            ]
                        )
    wrong = [
        r for r in d["cpu"] if r.get("clusters_after", d["meta"]["plan"]["clusters"]) != d["meta"]["plan"]["clusters"]
    ]
    if wrong:
        out.append(
            "\n**Warning**: the number of clusters changed during "
            + ", ".join(f"{r['contender']} c={r['connections']}" for r in wrong)
            + " (another job wiped the clusters table): those `/v2/clusters` rows are not comparable.\n"
        )
    out.append("\n#### Ratios ours / upstream\n\n")
    out.append(table(["pair", "request", "conns", "req/s", "p99", "API CPU per request"], ratios))
    return "".join(out)


def slow_section(res: Results, key: str) -> str:
    rows = res.d[key]
    return table(
        [
            "contender",
            "run",
            "slow requests",
            "RPC delay s",
            "all slow done s",
            "slowest s",
            "slow req/s",
            "fast GETs",
            "fast p50 ms",
            "fast p99 ms",
            "fast max ms",
            "errors",
        ],
        [
            [
                r["contender"],
                r.get("run") or "after the CPU runs",
                str(r["slow"]),
                f"{r['delay_s']:g}",
                fmt(r["slow_total_s"], 2),
                fmt(r["slow_max_s"], 2),
                fmt(r["slow_per_s"], 2),
                str(r["fast"]),
                fmt(r["fast_p50_ms"]),
                fmt(r["fast_p99_ms"]),
                fmt(r["fast_max_ms"]),
                str(r["slow_errors"] + r["fast_errors"]),
            ]
            for r in rows
        ],
    )


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
        alpha = 1.0 if c.kind == "ours" and not c.variant else 0.5
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
    axes[0].axhline(C1_RATIO, color="gray", lw=1, ls=":", label=f"C1: {C1_RATIO}x")
    axes[0].set_ylabel("all slow done / physical bound")
    axes[0].set_title("all-done time against 2 s + CPU-s / cores")
    axes[1].plot([16, 64], [50, 100], "k:", lw=1, label="C1 limits")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("fast GET p99 (ms)")
    axes[1].set_title("fast GETs during the burst")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(ns), [str(n) for n in ns])
        ax.set_xlabel("concurrent slow requests (2 s RPC)")
        ax.grid(alpha=0.3, which="both")
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


def c3_section(res: Results) -> str:
    rows = [
        [
            r["contender"],
            str(r["run"]),
            str(r["idle_workers"]),
            fmt(r["idle_mib"], 0),
            str(r["workers_after"]),
            fmt(r["back_to_one_s"], 1),
        ]
        for r in res.d.get("c3", [])
    ]
    if not rows:
        return "Not measured in this run.\n"
    return table(
        ["contender", "burst", "workers before", "PSS before MiB", "workers right after", "back to one worker after s"],
        rows,
    )


def memory_section(res: Results) -> str:
    rows = []
    for c in res.contenders:
        m = res.memory(c.name)
        if m:
            rows.append(
                [c.name, str(m["processes"]), fmt(m["idle_mib"], 0), fmt(m["after_load_mib"], 0)]
                + [fmt(m["after_load_mib"] / c.serving, 0)]
            )
    text = table(["contender", "processes", "PSS idle MiB", "PSS after load MiB", "per serving process MiB"], rows)
    ratios = []
    for how, o, u in res.pairs():
        mo, mu = res.memory(o.name), res.memory(u.name)
        if mo and mu:
            ratios.append(
                [
                    f"{o.name} / {u.name} ({how})",
                    fmt(mo["idle_mib"] / mu["idle_mib"], 2),
                    fmt(mo["after_load_mib"] / mu["after_load_mib"], 2),
                ]
            )
    return text + "\n" + table(["pair", "idle", "after load"], ratios)


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
    d = res.d
    names = []
    colors = {"ours": "tab:blue", "upstream": "tab:orange"}

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, path in zip(axes, ("/v2/plugins", "/v2/clusters"), strict=True):
        conns = max((r["connections"] for r in d["cpu"] if r["path"] == path), default=0)
        for kind in ("ours", "upstream"):
            for close, style in ((True, "-o"), (False, "--s")):
                cs = [c for c in res.contenders if c.kind == kind]
                pts = [(c, res.cpu(c.name, path, close, conns)) for c in cs]
                pts = [(c, r) for c, r in pts if r]
                if pts:
                    ax.plot(
                        [c.workers for c, _ in pts],
                        [r["rps"] for _, r in pts],
                        style,
                        color=colors[kind],
                        label=f"{kind} {'close' if close else 'keep-alive'}",
                    )
        ax.set_title(f"GET {path}, {conns} connections")
        ax.set_xlabel("workers (SAHARA_API_WORKERS / api_workers)")
        ax.set_xticks(sorted({c.workers for c in res.contenders}))
        ax.set_ylabel("req/s")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "rps_vs_workers.png", dpi=90)
    plt.close(fig)
    names.append("rps_vs_workers.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, close in zip(axes, (True, False), strict=True):
        for c in res.contenders:
            mine = [r for r in d["cpu"] if r["contender"] == c.name and r["path"] == "/v2/plugins"]
            rows = sorted((r for r in mine if r["close"] == close), key=lambda r: r["connections"])
            if rows:
                ax.plot(
                    [r["connections"] for r in rows],
                    [r["p99_ms"] for r in rows],
                    "-o" if c.kind == "ours" else "--s",
                    label=c.name,
                    color=colors[c.kind],
                    alpha=0.4 + 0.6 * c.workers / max(x.workers for x in res.contenders),
                )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"GET /v2/plugins, {'Connection: close' if close else 'keep-alive'}")
        ax.set_xlabel("concurrent connections")
        ax.set_ylabel("p99 latency (ms)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "p99_vs_concurrency.png", dpi=90)
    plt.close(fig)
    names.append("p99_vs_concurrency.png")

    fig, ax = plt.subplots(figsize=(8, 4))
    mem = [(c, res.memory(c.name)) for c in res.contenders]
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
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "pss.png", dpi=90)
    plt.close(fig)
    names.append("pss.png")
    return names


def write(data: dict, out: Path) -> None:
    res = Results(data)
    meta = data["meta"]
    m = meta["machine"]
    plot_dir = out / "bench"
    plot_dir.mkdir(parents=True, exist_ok=True)
    images = plots(res, plot_dir) + c1_plots(res, plot_dir)
    summary, _ = targets(res)
    load_start = float(meta["loadavg_start"][0])
    busy = max(r["loadavg"] for r in data["cpu"]) if data["cpu"] else 0.0
    warning = ""
    if busy > BUSY_LOAD + m["cpus"] or load_start > BUSY_LOAD:
        warning = (
            f"\n> **The machine was not idle**: load average {load_start:.2f} at the start, up to {busy:.2f} during "
            "the CPU runs (the harness's own load counts there). Other jobs share these cores, so absolute req/s are "
            "low and noisy; the API CPU per request column is the steadier figure.\n"
        )
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
    ours_env = " ".join(f"{k}={v}" for k, v in meta["ours_env"].items())
    text = f"""# Benchmarks: our uWSGI deployment vs Sahara's `sahara-api`

Generated by `{"BENCH_QUICK=1 " if meta["quick"] else ""}make bench` (bench/, {meta["duration_s"]:.0f} s) at commit
`{meta["commit"]}` on {meta["started"]}. Every figure below comes from that run; the raw results are in
[bench/results.json](bench/results.json). Re-run it to check them: the harness starts and stops every
server itself on the local stack (scripts/stack.sh), on loopback only, with bounded loads.
{"Our contenders ran with extra environment: `" + ours_env + "`." if ours_env else ""}

## Machine

| | |
|---|---|
| CPU | {m["cpu_model"]}, {m["cpus"]} cores |
| RAM | {m["ram_gib"]} GiB |
| kernel / OS | {m["kernel"]} / {m["os"]} |
| Python | {m["python"]} |
| load average (1, 5, 15 min) | start {" ".join(meta["loadavg_start"])}, end {" ".join(meta["loadavg_end"])} |
| versions | {", ".join(f"{k} {v}" for k, v in meta["versions"].items())} |
{warning}
MariaDB, RabbitMQ, memcached, Keystone, the load generator and the API all share these cores.

## Contenders

Same stack, same `sahara.conf` (fake plugin, MariaDB through PyMySQL, RabbitMQ vhost `sahara-bench`,
keystonemiddleware with its token cache in memcached) and the same paste pipeline
(`deploy/api-paste.ini`; upstream gets it through `api_paste_config`). Upstream's parent process serves
requests too, so `api_workers=N` means N+1 serving processes: pairs are compared both at the same
`api_workers` and at the same number of serving processes.

{contenders}
## Targets

{summary}
[tuning.md](tuning.md) lists the knobs tried for each target and what they did.

## (a) CPU-bound requests

`wrk` ({meta["versions"]["wrk"]}) with a valid token, {meta["plan"]["seconds"]:g} s per run after a warm-up, both with
`Connection: close` (a new TCP connection per request) and with keep-alive. "API CPU ms/req" is the user+system
CPU of all the contender's processes during the run divided by the requests answered; "machine busy" is the
whole machine's CPU use during the run (the load generator, MariaDB, memcached and Keystone included).
`/v2/clusters` lists the {meta["plan"]["clusters"]} clusters of the benchmark's own Keystone project.
Our uWSGI answers with `Connection: close` (deploy/uwsgi.ini), so in the keep-alive runs it still opens a
connection per request while upstream's eventlet server keeps them.

![req/s vs workers](bench/{images[0]})
![p99 vs concurrency](bench/{images[1]})
{cpu_section(res)}
#### Where the CPU of a request goes

The app alone, called in-process without any HTTP server (bench/profile_app.py, cProfile with a CPU clock,
own time summed per package; same config, token and data): what no server choice can remove.

{profile_section(res)}
## (b) Slow engine RPC with fast requests

The spec's scenario (tests/integration/workload.py, shared with tests/integration/test_slow_rpc.py): concurrent
scale requests (`PUT /v2/clusters/ID`) whose validation makes a synchronous RPC that the slow engine
(tests/integration/slow_engine.py, a real oslo.messaging server on RabbitMQ) answers after the delay (then the
API answers 400), and a fast `GET /v2/plugins` every {meta["plan"]["fast_interval"] * 1000:.0f} ms while they run.

{slow_section(res, "slow")}
## (b2) C1: bursts of slow requests, the curve

Bursts of N concurrent scale requests (the same workload, {meta["plan"]["c1_delay"]:g} s RPC) with a fast GET
every {meta["plan"]["fast_interval"] * 1000:.0f} ms meanwhile; each row is the median of
{meta["plan"]["c1_runs"]} bursts with the (min-max) spread, after one unrecorded burst that sets up each worker's
RPC connections. The bound is physical: {meta["plan"]["c1_delay"]:g} s plus the CPU the burst's requests used,
divided by the cores: the user+system CPU of all the contender's processes during the burst (from /proc,
workers born meanwhile included) minus the fast GETs' share (their count times the CPU of one, measured before
the curve). C1's rules: all done within {C1_RATIO}x the bound, no error, fast p99 <= 50 ms at N <= 16 and
<= 100 ms above. A contender whose median burst took more than 2x its bound runs no larger burst, and a
burst over 3x is not repeated. The bound counts the CPU the requests got, not the CPU other jobs on the
machine took meanwhile: "cores left" is the cores minus what everything else used during the burst
(whole-machine busy time from /proc/stat, less the contender's and the load generator's CPU; MariaDB,
RabbitMQ and Keystone count as others), and the column after it divides by the bound computed on those
cores instead. It is printed to read a loaded run, not used in the verdict.

![C1 curve](bench/{images[3]})

{c1_section(res)}
Memory per capability (C2): total PSS after the bursts against the largest burst that met C1's rules.

![PSS vs capability](bench/{images[4]})

{c1_memory_section(res)}
C3, elastic workers (`SAHARA_API_ELASTIC=1`): each burst starts from idle (one worker); after it, the time
until uWSGI's cheaper subsystem is back at one worker.

{c1_section(res, "c3")}
{c3_section(res)}
## (c) Memory

Total PSS (`/proc/PID/smaps_rollup`) of every process of the contender (uWSGI master and workers; upstream's
parent and children): idle is 1 s after the first 200, after load is after the CPU runs.

![PSS per contender](bench/{images[2]})

{memory_section(res)}
## (d) Cold start and respawn

Cold start: from starting the command (our launcher's checks included) to the first 200 of an authenticated
`GET /v2/plugins`, polled every 10 ms; "listening" is when the port first accepts a TCP connection (ours: the
launcher's checks are done and uWSGI has bound it, before loading the app; upstream: after loading the app).
Respawn: `kill -9` of one worker while `GET /v2/plugins` runs at 20 req/s; "new process" is when the
replacement appears, "waiting for connections" when all its threads sleep and one is blocked in accept/epoll
(read from /proc/PID/task/*/syscall); failed requests are counted from 1 s before the kill to 1 s after the
replacement is ready.

{time_section(res)}
"""
    if data.get("unexpected_deaths"):
        text += "\nWorker deaths the benchmark did not cause: " + ", ".join(
            f"{r['contender']} {r['count']}" for r in data["unexpected_deaths"]
        )
        text += " (see the uWSGI log of the run).\n"
    (out / "benchmarks.md").write_text(text)


if __name__ == "__main__":
    path = Path(sys.argv[1])
    write(json.loads(path.read_text()), path.parent.parent)
