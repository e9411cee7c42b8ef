"""make hostile: the hostile-client probes (harness/hostile.py) against upstream
`sahara-api` (api_workers=4) and ours (4 workers) with the front on (nginx,
the default) and off (direct), in one run on the same stack; writes the
side-by-side table into docs/security.md ("Hostile clients, side by side")
and the raw figures to docs/bench/hostile.json.

Knobs (environment): HOSTILE_SECONDS (slowloris length, default 20),
HOSTILE_ROUNDS (interleaved CPU rounds, default 3), HOSTILE_OUT (directory
instead of docs/). `python -m bench.hostile_run cost` measures only the
front's cost (direct vs nginx, HOSTILE_ROUNDS rounds) and prints it."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import measure
from bench.contenders import Contender, launch
from bench.project import Project, on_the_stack, say
from harness import ROOT, hostile, startup
from harness.figures import cpu_seconds, loadavg, pss_mib, table
from harness.procs import Api, tree, uwsgi_master

LIMIT_MB = 10  # SAHARA_API_MAX_BODY_MB's default; upstream has no limit of its own
CONTENDERS = [
    ("upstream-4", "upstream", None),
    ("ours-4, direct", "ours", "direct"),
    ("ours-4, nginx (default)", "ours", "nginx"),
]
BEGIN, END = "<!-- hostile:begin -->", "<!-- hostile:end -->"


def start(name: str, kind: str, front: str | None, project: Project, workdir: Path) -> tuple[Api, Path | None]:
    run = workdir / re.sub(r"[^a-z0-9-]+", "-", name)
    run.mkdir()
    env = {"SAHARA_RUN_DIR": str(run), "SAHARA_API_FRONT": front} if front else {}
    api, _ = launch(Contender(kind, 4), project.conf, workdir, env)
    startup.first_200(f"{api.url}/v2/plugins", project.token, time.monotonic(), api)
    startup.wait_workers(api, 4)
    return api, run if kind == "ours" else None


def cost(apis: dict[str, Api], token: str, rounds: int) -> dict[str, dict]:
    """CPU per request of each process tree, the contenders interleaved round by
    round (wrk -c16, Connection: close, 10 s each) so that changes in the load of
    a shared machine hit all alike; the median round, then PSS after the load."""
    cpu: dict[str, list[float]] = {name: [] for name in apis}
    rps: dict[str, list[float]] = {name: [] for name in apis}
    load = []
    for api in apis.values():
        measure.wrk(f"{api.url}/v2/plugins", token, 16, 3, True, api)  # warm-up
    for _ in range(rounds):
        for name, api in apis.items():
            procs = tree(api.pid)
            cpu0 = cpu_seconds(procs)
            r = measure.wrk(f"{api.url}/v2/plugins", token, 16, 10, True, api)
            cpu[name].append(1000 * (cpu_seconds(procs) - cpu0) / max(r["requests"], 1))
            rps[name].append(r["rps"])
            load.append(loadavg())
    out = {}
    for name, api in apis.items():
        fronts = [p for p in tree(api.pid) if p.name() == "nginx"]
        out[name] = {
            "cpu_ms_per_req": round(statistics.median(cpu[name]), 2),
            "cpu_ms_per_req_rounds": [round(x, 2) for x in cpu[name]],
            "rps": round(statistics.median(rps[name]), 1),
            "pss_mib": pss_mib(tree(api.pid)),
            "front_pss_mib": pss_mib(fronts) if fronts else None,
            "loadavg": max(load),
        }
    return out


def probe(name: str, api: Api, stats_dir: Path | None, project: Project, seconds: float) -> dict:
    url, port, token = api.url, api.port, project.token
    say(f"{name}: slowloris ({seconds:g} s), heads, bodies, slow bodies, idle keep-alive")
    out: dict = {"name": name, "loadavg_start": loadavg()}
    out["slowloris"] = hostile.slowloris(port, url, token, seconds=seconds)
    out["heads"] = hostile.heads(port)
    out["bodies"] = hostile.bodies(port, LIMIT_MB * 2**20, token)
    out["slow_bodies"] = hostile.slow_bodies(port, stats_dir)
    out["keepalive"] = hostile.idle_keepalive(port, url, token)
    say(f"{name}: HUP under load, then kill -9 of a worker under load")
    out["hup"] = vars(hostile.hup(url, token, api.pid))
    startup.first_200(f"{url}/v2/plugins", token, time.monotonic(), api)
    startup.wait_workers(api, 4)
    out["kill_worker"] = vars(hostile.kill_worker(url, token, uwsgi_master(api.pid), stats_dir))
    return out


def row(r: dict) -> list[str]:
    s, k, c = r["slowloris"], r["keepalive"], r["cost"]
    kill = r["kill_worker"]
    held = "" if kill["in_flight"] is None else f" (held {kill['in_flight']})"
    return [
        r["name"],
        f"{s['answered']}/{s['sent']}",
        "–" if s["p99_ms"] is None else f"{s['p99_ms']:.0f} ms",
        r["heads"]["70 KB header"],
        r["heads"]["1 MB header"],
        r["heads"]["700 headers"],
        r["bodies"]["declared body over the limit"],
        r["bodies"]["real body over the limit (chunked)"],
        "–" if r["slow_bodies"]["most_busy_threads"] is None else str(r["slow_bodies"]["most_busy_threads"]),
        f"{k['fast_answered']}/{k['fast_answered'] + k['fast_failed']}, p99 {k['p99_ms']:.0f} ms",
        f"{r['hup']['failed']}/{r['hup']['requests']}",
        f"{kill['failed']}/{kill['requests']}{held}",
        f"{c['cpu_ms_per_req']:.2f}",
        f"{c['pss_mib']:.0f}" + ("" if c["front_pss_mib"] is None else f" (nginx {c['front_pss_mib']:.1f})"),
    ]


HEAD = [
    "",
    "fast GETs answered during slowloris",
    "p99",
    "70 KB header",
    "1 MB header",
    "700 headers",
    "declared body > limit",
    "chunked body > limit",
    "threads held by 40 slow bodies",
    "fast GETs beside 500 idle keep-alives",
    "HUP under load: failed",
    "kill -9 of a worker: failed",
    "CPU ms/request",
    "PSS MiB",
]


def section(results: list[dict], meta: dict) -> str:
    return (
        f"{BEGIN}\n"
        f"Generated by `make hostile` (bench/hostile_run.py) at {meta['started']}, commit {meta['commit']}, "
        f"{meta['duration_s']:.0f} s; load average {meta['loadavg_start']} at the start, "
        f"{max(r['cost']['loadavg'] for r in results):.1f} at most during the CPU runs "
        "(other jobs shared the 2 cores: latencies are upper bounds). Slowloris: 200 connections sending a request "
        f"head at 1 B/s for {meta['seconds']:g} s on loopback while an authenticated `GET /v2/plugins` goes every "
        "0.1 s with a 5 s timeout. Bodies: 10 MiB + 1 B (our `SAHARA_API_MAX_BODY_MB`; upstream has no limit). "
        "Threads held: the most uWSGI worker threads inside a request (stats socket) while 40 unauthenticated "
        "clients send a body at 1 B/s (upstream: not observable, –). HUP and kill -9: 4 clients sending "
        "`GET /v2/plugins` back to back for 6-8 s; held = requests the killed worker was serving. CPU and PSS: "
        "the whole process tree (nginx included), `wrk -c16` with `Connection: close`, the median of "
        f"{meta['rounds']} rounds of 10 s, the three servers interleaved; PSS after them.\n\n"
        + table(HEAD, [row(r) for r in results])
        + f"{END}"
    )


def write(results: list[dict], meta: dict, out: Path) -> None:
    (out / "bench").mkdir(parents=True, exist_ok=True)
    (out / "bench" / "hostile.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    doc = out / "security.md"
    text = doc.read_text() if doc.exists() else ""
    new = section(results, meta)
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: new, text, flags=re.S)
    else:
        text += f"\n## Hostile clients, side by side\n\n{new}\n"
    doc.write_text(text)


def main() -> None:
    seconds = float(os.environ.get("HOSTILE_SECONDS", "20"))
    rounds = int(os.environ.get("HOSTILE_ROUNDS", "3"))
    out = Path(os.environ.get("HOSTILE_OUT") or ROOT / "docs").resolve()
    t0 = time.monotonic()
    meta = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_start": loadavg(),
        "seconds": seconds,
        "rounds": rounds,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
    }
    cost_only = sys.argv[1:] == ["cost"]  # the front's cost alone: direct vs nginx, printed, nothing written
    results, apis = [], {}
    with tempfile.TemporaryDirectory(prefix="sahara-hostile-") as tmp, on_the_stack(Path(tmp), 1) as project:
        try:
            for name, kind, front in CONTENDERS[1:] if cost_only else CONTENDERS:
                apis[name], stats_dir = start(name, kind, front, project, Path(tmp))
                if not cost_only:
                    results.append(probe(name, apis[name], stats_dir, project, seconds))
                    say(json.dumps(results[-1]))
            say(f"CPU per request, {rounds} interleaved rounds of wrk -c16 (Connection: close) 10 s each, then PSS")
            costs = cost(apis, project.token, rounds)
            for r in results:
                r["cost"] = costs[r["name"]]
            say(json.dumps(costs))
        finally:
            for api in apis.values():
                api.stop()
    meta["duration_s"] = round(time.monotonic() - t0, 1)
    if cost_only:
        return
    write(results, meta, out)
    say(f"done in {meta['duration_s']:.0f} s: {out / 'security.md'}")


if __name__ == "__main__":
    main()
