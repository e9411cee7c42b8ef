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
TARGET_RPS_RATIO, TARGET_PSS_RATIO = 1.2, 0.7
P1_SLOW_MAX_S, P1_FAST_P99_MS = 2.3, 50
P4_ACCEPT_S, P4_COLD_S = 0.1, 1.5


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

    def slow(self, key: str, name: str) -> dict | None:
        """The contender's row; for P1 the warm run (the last one)."""
        rows = [r for r in self.d[key] if r["contender"] == name]
        return rows[-1] if rows else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def targets(res: Results) -> tuple[str, dict]:
    """The P1..P4 lines of the summary, and the figures they rest on."""
    d = res.d
    n = max((c.workers for c in res.ours), default=0)
    ours, up = f"ours-{n}", f"upstream-{n}"
    lines, figures = [], {}

    p1 = res.slow("p1", ours)
    ok = None
    if p1:
        ok = p1["slow_max_s"] <= P1_SLOW_MAX_S and p1["fast_p99_ms"] <= P1_FAST_P99_MS
        ok = ok and not p1["slow_errors"] and not p1["fast_errors"]
        lines.append(
            f"- **P1** (slow RPC does not block): {verdict(ok)}. {ours} (warm): {p1['slow']} concurrent slow requests "
            f"with a {p1['delay_s']:g} s RPC all answered within {p1['slow_max_s']:.2f} s (target {P1_SLOW_MAX_S} s); "
            f"fast GETs meanwhile p99 {fmt(p1['fast_p99_ms'])} ms (target {P1_FAST_P99_MS} ms); errors "
            f"{p1['slow_errors'] + p1['fast_errors']}."
        )
        u = res.slow("p1", up)
        if u:
            lines[-1] += f" {up} for comparison: slowest {u['slow_max_s']:.2f} s, fast p99 {fmt(u['fast_p99_ms'])} ms."
    figures["P1"] = ok

    # P2: every pair at the same api_workers, both requests, both client modes,
    # every concurrency where the server is loaded (>= 4 connections).
    ratios = []
    for how, o, u in res.pairs():
        if how != "same api_workers":
            continue
        for path in ("/v2/plugins", "/v2/clusters"):
            for close in (True, False):
                for conns in sorted({r["connections"] for r in d["cpu"] if r["path"] == path}):
                    a, b = res.cpu(o.name, path, close, conns), res.cpu(u.name, path, close, conns)
                    if a and b and conns >= 4:
                        ratios.append(
                            (
                                a["rps"] / b["rps"],
                                f"{o.name}/{u.name} {path} {'close' if close else 'keep-alive'} c={conns}",
                            )
                        )
    ok = None if not ratios else min(q for q, _ in ratios) >= TARGET_RPS_RATIO
    figures["P2"] = ok
    if ratios:
        worst = min(ratios)
        lines.append(
            f"- **P2** (req/s >= {TARGET_RPS_RATIO}x upstream at the same api_workers, every request, client mode "
            f"and concurrency >= 4): {verdict(ok)}. Ratios from {worst[0]:.2f}x ({worst[1]}) to "
            f"{max(ratios)[0]:.2f}x ({max(ratios)[1]}); {sum(q >= TARGET_RPS_RATIO for q, _ in ratios)} of "
            f"{len(ratios)} comparisons reach {TARGET_RPS_RATIO}x (table below)."
        )

    if figures["P2"] is False:
        prof = d.get("profile") or {}
        app = {p.rsplit("/", 1)[-1]: r["cpu_ms_per_req"] for p, r in prof.items()}
        srv = {}
        for path in ("/v2/plugins", "/v2/clusters"):
            for name in (ours, up):
                rows_ = [r["api_cpu_ms_per_req"] for r in d["cpu"] if r["contender"] == name and r["path"] == path]
                srv[(name, path)] = statistics.median(rows_) if rows_ else None
        lines.append(
            "  Why: the request itself dominates. In-process, without any server, a request costs "
            + ", ".join(f"{v:.1f} ms ({k})" for k, v in app.items())
            + " of CPU (the profile table below: mostly SQLAlchemy and PyMySQL); through the servers the median "
            "API CPU per request is "
            + "; ".join(
                f"{path.rsplit('/', 1)[-1]} {fmt(srv[(ours, path)], 2)} ms ours vs "
                f"{fmt(srv[(up, path)], 2)} ms upstream"
                for path in ("/v2/plugins", "/v2/clusters")
            )
            + ". What a server can remove is the difference, not 1.2x; with keep-alive clients upstream's eventlet "
            "server also keeps connections that ours closes on purpose (tuning.md)."
        )
    mo, mu = res.memory(ours), res.memory(up)
    q = ratio(mo and mo["after_load_mib"], mu and mu["after_load_mib"])
    ok = None if q is None else q <= TARGET_PSS_RATIO
    figures["P3"] = ok
    if mo and mu:
        lines.append(
            f"- **P3** (PSS after load <= {TARGET_PSS_RATIO}x upstream, {n} workers): {verdict(ok)}. "
            f"{ours} {mo['after_load_mib']:.0f} MiB vs {up} {mu['after_load_mib']:.0f} MiB = {q:.2f}x."
        )
    if figures["P3"] is False and mo and mu:
        lines.append(
            f"  Why: {mo['processes']} processes (master + workers) at "
            f"{mo['after_load_mib'] / mo['processes']:.0f} MiB each vs upstream's {mu['processes']} at "
            f"{mu['after_load_mib'] / mu['processes']:.0f} MiB; gc.freeze() already keeps the master's heap shared, "
            "but CPython 3.11 writes reference counts into every object a request touches, so each worker still "
            "un-shares ~25 MiB of it (tuning.md)."
        )

    rs, co, cu = res.respawn(ours), res.cold(ours), res.cold(up)
    if rs and co and cu:
        worst_accept = max(r["accepting_s"] for r in rs)
        failed = sum(r["failed"] for r in rs)
        cold_o, cold_u = statistics.median(co), statistics.median(cu)
        ok = worst_accept <= P4_ACCEPT_S and failed == 0 and cold_o <= P4_COLD_S and cold_o <= cold_u
        figures["P4"] = ok
        lines.append(
            f"- **P4** (respawn and cold start): {verdict(ok)}. {ours}: a killed worker replaced and waiting for "
            f"connections after at most {worst_accept:.3f} s over {len(rs)} kills (target {P4_ACCEPT_S} s), "
            f"{failed} failed requests; cold start to first 200 median {cold_o:.2f} s (target {P4_COLD_S} s) vs "
            f"{up} {cold_u:.2f} s."
        )
        lo = res.cold(ours, "listening_s")
        if not ok and lo:
            lines.append(
                f"  Why: our launcher checks MariaDB and RabbitMQ (side by side) before it execs uWSGI, whose port "
                f"opens after a median {statistics.median(lo):.2f} s; then uWSGI loads Sahara's app, which takes "
                "about as long as upstream's whole start, and forks the workers (tuning.md, 'Not changed')."
            )
    else:
        figures["P4"] = None
    return "\n".join(lines) + "\n", figures


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
    images = plots(res, plot_dir)
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
P1 run ({meta["plan"]["p1_slow"]} slow requests, {meta["plan"]["p1_delay"]:g} s RPC):

{slow_section(res, "p1")}
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
