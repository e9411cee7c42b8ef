"""make bench: run every scenario against every contender, write the raw
results (JSON) and docs/benchmarks.md with its plots.

Phases, in this order (docs/benchmarks.md explains each):
  profile     the app's CPU per request in-process, and its DB pool ceiling
  efficiency  wrk, ours vs upstream at equal serving processes, side by side
  C1          bursts of N slow requests (2 s RPC) with fast GETs, and a DB burst
  C2/C4       PSS after the same load, cold starts, respawn, at equal workers
A contender that stops answering is recorded as wedged (py-spy dump of its
processes), SIGKILLed with its process groups, and the bench moves on.

Knobs (environment):
  BENCH_QUICK=1        a ~3 min run that checks the harness, not the numbers (make test runs it)
  BENCH_OUT=DIR        where results.json, benchmarks.md and the PNGs go
                       (default docs/ for the full run, .bench/quick for the quick one)
  BENCH_CONTENDERS     only these, in every phase, e.g. ours-2,upstream-1 (efficiency pairs
                       equal serving processes among them and runs the others alone)
  BENCH_SECONDS        length of each wrk run
  BENCH_OURS_ENV       extra environment for our contenders, e.g. "SAHARA_API_THREADS=8": how to
                       A/B a candidate setting against deploy/defaults.env as shipped (docs/tuning.md)
  BENCH_QUIET_WAIT     longest wait, s, for a load average below 1 before starting
                       (default 600; 0 for the quick run); benchmarks.md says when it did not get one
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import psutil
import requests
import yaml

from bench import measure, report
from bench.contenders import Contender, launch, parse
from bench.plan import C4_PHASE, FULL, QUICK, Plan
from bench.project import BENCH_PROJECT, Project, on_the_stack, say
from bench.wedge import Wedged, answers, excerpt, kill_all, wedged
from harness import ROOT, startup
from harness.figures import CpuMeter, loadavg, median, own_cpu_seconds, percentile, pss_mib
from harness.hostile import respawn
from harness.procs import Api, session_procs
from harness.slow_engine import start_slow_engine
from harness.workload import fast_get, slow_mix
from sahara_api_knobs import defaults

CHART_VALUES = ROOT / "deploy" / "helm" / "sahara-api" / "values.yaml"
# C4: the end of each phase of our start, as uWSGI logs it (log text -> phase).
PHASES = {
    "checks": "*** Starting uWSGI",  # the launcher's checks are done and it has exec'd uWSGI
    "app": "WSGI app 0 (mountpoint='') ready",  # the master has built Sahara's app
    "fork": "spawned uWSGI worker 1 ",  # the first worker is forked
}


def machine() -> dict:
    lscpu = dict(
        line.split(":", 1) for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    )
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kib = int(next(x for x in meminfo if x.startswith("MemTotal")).split()[1])
    return {
        "cpu_model": lscpu.get("Model name", "?").strip(),
        "cpus": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "os": next(
            (
                x.split("=", 1)[1].strip('"')
                for x in Path("/etc/os-release").read_text().splitlines()
                if x.startswith("PRETTY_NAME=")
            ),
            "?",
        ),
    }


def versions() -> dict:
    from importlib.metadata import version

    out = {p: version(p) for p in ("sahara", "uWSGI", "oslo.service", "eventlet", "keystonemiddleware", "SQLAlchemy")}
    out["wrk"] = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("[")[0].strip()
    return out


class Bench:
    def __init__(self, plan: Plan, workdir: Path, ours_env: dict[str, str], project: Project) -> None:
        self.plan, self.workdir, self.ours_env, self.project = plan, workdir, ours_env, project
        self.current = ""  # the phase running now
        self.results: dict = {
            "phases": [],
            "cpu": [],
            "c1": [],
            "c1_memory": [],
            "db": [],
            "memory": [],
            "cold_start": [],
            "respawn": [],
            "wedged": [],
            "unexpected_deaths": [],
        }

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Say when a phase starts and ends, and record its length and the load average around it."""
        t0, load0 = time.monotonic(), loadavg()
        self.current = name
        say(f"== {name} (load average {load0})")
        try:
            yield
        finally:
            row = {"phase": name, "seconds": round(time.monotonic() - t0, 1), "load_start": load0}
            row["load_end"] = loadavg()
            self.results["phases"].append(row)
            say(f"== {name}: {row['seconds']:.0f} s (load average {load0} -> {row['load_end']})")

    def start(self, c: Contender) -> tuple[Api, float]:
        """Start and wait for the first 200 of an authenticated GET; returns (api, cold start s).
        For ours, also when each phase of the start ended (uWSGI's own log lines).
        One that never answers is wedged: dumped and killed here."""
        api, t0 = launch(c, self.project.conf, self.workdir, self.ours_env if c.kind == "ours" else {})
        watch = startup.LogWatch(api, t0, PHASES if c.kind == "ours" else {})
        try:
            listening = startup.listening(api.port, t0, api, limit=self.plan.start_limit_s)
            url, p = f"{api.url}/v2/plugins", self.plan
            cold = startup.first_200(url, self.project.token, t0, api, limit=p.start_limit_s, every=p.cold_start_poll_s)
            startup.wait_workers(api, c.workers)
        except TimeoutError as e:
            self.wedged(c, api, "start", str(e))
            raise Wedged(str(e), c.name) from None
        except Exception:
            api.stop()
            raise
        finally:
            phases = watch.stop()
        self.results["cold_start"].append(
            {
                "contender": c.name,
                "phase": self.current,
                "listening_s": round(listening, 3),
                "seconds": round(cold, 3),
                "phases": phases,
            }
        )
        return api, cold

    def wedged(self, c: Contender, api: Api, phase: str, what: str) -> None:
        say(f"{c.name}: WEDGED in {phase}: {what}; dumping its processes with py-spy, then SIGKILL")
        row = wedged(c.name, api, phase, what)
        for pid, text in row["dumps"].items():
            say(f"{c.name}: pid {pid}:\n{excerpt(text)}")
        say(f"{c.name}: killed {row['dump_and_kill_s']} s after it was found wedged; moving on")
        self.results["wedged"].append(row)

    def check(self, c: Contender, api: Api, what: str) -> None:
        """After something failed: still answering, or wedged?"""
        p = self.plan
        if not answers(f"{api.url}/v2/plugins", self.project.token, p.check_tries, p.check_timeout_s):
            raise Wedged(what, c.name)

    def stop(self, c: Contender, api: Api) -> None:
        """TERM, SIGKILL of its group after 30 s, then of anything of it still alive
        (nginx, in a session of its own, outlives a SIGKILLed uWSGI master)."""
        self.note_deaths(c, api)
        procs = session_procs(api)
        api.stop()
        kill_all(procs)

    # -- efficiency: ours vs upstream at equal serving processes, side by side -------------------

    def efficiency(self, pair: str) -> None:
        """Both contenders up at once; every cell (path, client mode, connections) runs
        ours, upstream, upstream, ours (ABBA), so load drift hits both alike."""
        p = self.plan
        cs = parse(pair.replace("/", ","))
        apis: dict[str, Api] = {}
        try:
            for c in cs:
                say(f"{c.name}: starting ({c.label()})")
                apis[c.name], cold = self.start(c)
                say(f"{c.name}: first 200 after {cold:.2f} s")
            for c in cs:
                self.wrk(c, apis[c.name], "/v2/plugins", 8, 2, True)  # warm every worker up
            order = [cs, cs[::-1]] * p.repeats
            for path in ("/v2/plugins", "/v2/clusters"):
                for close in (True, False):
                    for conns in p.concurrency:
                        for rep in range(p.repeats):
                            for c in order[rep]:
                                self.cell(c, apis[c.name], path, close, conns, rep + 1)
        except Wedged as e:
            bad = next((c for c in cs if c.name == e.contender), None)
            if bad and bad.name in apis:
                self.wedged(bad, apis.pop(bad.name), "efficiency", e.what)
            say(f"{pair}: the rest of this pair's runs are skipped")
        finally:
            for c in cs:
                if c.name in apis:
                    self.stop(c, apis[c.name])

    def cell(self, c: Contender, api: Api, path: str, close: bool, conns: int, rep: int) -> None:
        p = self.plan
        try:
            if path == "/v2/clusters" and self.project.count_clusters(api) != p.clusters:
                say(f"stack: the clusters of {BENCH_PROJECT} changed under us; making {p.clusters} again")
                self.project.ensure_clusters()
            r = self.wrk(c, api, path, conns, p.seconds, close)
            row = {"contender": c.name, "path": path, "close": close, "connections": conns, "rep": rep, **r}
            if path == "/v2/clusters":
                row["clusters_after"] = self.project.count_clusters(api)
        except Wedged as e:
            raise Wedged(e.what, c.name) from None
        self.results["cpu"].append(row)
        say(
            f"{c.name}: GET {path} c={conns} {'close' if close else 'keep-alive'} #{rep}: "
            f"{r['rps']} req/s p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms "
            f"errors {r['errors']} (API CPU {r['api_cpu_ms_per_req']} ms/req, load {r['loadavg']})"
        )

    def wrk(self, c: Contender, api: Api, path: str, conns: int, seconds: float, close: bool) -> dict:
        r = measure.wrk(f"{api.url}{path}", self.project.token, conns, seconds, close, api)
        if r["requests"] == 0 or r["errors"] >= r["requests"]:  # nothing answered, or nothing right
            self.check(c, api, f"wrk GET {path} c={conns}: {r['requests']} answers, {r['errors']} errors")
        return r

    # -- C2, C4: the same load at equal workers, then cold starts and respawn ----------------------

    def equal_workers(self) -> None:
        p, token = self.plan, self.project.token
        cs = parse(p.equal_workers)
        for c in cs:
            say(f"{c.name}: starting ({c.label()})")
            try:
                api, cold = self.start(c)
            except Wedged:
                continue
            try:
                time.sleep(p.idle_settle_s)
                idle = pss_mib(session_procs(api))
                say(f"{c.name}: first 200 after {cold:.2f} s; idle PSS {idle} MiB")
                # The same load for every contender: both paths, both client modes.
                for path in ("/v2/plugins", "/v2/clusters"):
                    for close in (True, False):
                        self.wrk(c, api, path, p.equal_load_connections, p.seconds, close)
                procs = session_procs(api)
                loaded = pss_mib(procs)
                row = {"contender": c.name, "processes": len(procs), "idle_mib": idle, "after_load_mib": loaded}
                self.results["memory"].append(row)
                say(f"{c.name}: PSS after load {loaded} MiB ({len(procs)} processes)")
                for i in range(p.kills):
                    try:
                        r = respawn(api, f"{api.url}/v2/plugins", token, p.respawn_rate, p.respawn_settle_s)
                    except RuntimeError as e:  # no replacement within 10 s: say so, go on
                        say(f"{c.name}: kill -9 of a worker: {e}")
                        break
                    self.results["respawn"].append({"contender": c.name, "attempt": i + 1, **asdict(r)})
                    say(
                        f"{c.name}: kill -9 of a worker: new process after {r.new_process_s:.3f} s, "
                        f"waiting for connections after {r.accepting_s:.3f} s, {r.failed}/{r.requests} failed"
                    )
            except Wedged as e:
                self.wedged(c, api, "C2 load", e.what)
            finally:
                self.stop(c, api)
        # C4: the other cold starts, round robin so a change of load hits every contender.
        for _ in range(p.cold_starts - 1):
            for c in cs:
                with contextlib.suppress(Wedged):
                    api, cold = self.start(c)
                    self.stop(c, api)
                    say(f"{c.name}: cold start again: first 200 after {cold:.2f} s")

    def note_deaths(self, c: Contender, api: Api) -> None:
        """Worker deaths the benchmark did not cause (uWSGI logs each one)."""
        kills = sum(1 for r in self.results["respawn"] if r["contender"] == c.name)
        deaths = api.log_text().count("DAMN ! worker")
        if c.kind == "ours" and deaths > kills:
            self.results["unexpected_deaths"].append({"contender": c.name, "count": deaths - kills})
            say(f"{c.name}: WARNING {deaths - kills} worker death(s) not caused by the benchmark (see {api.log})")

    def profile(self) -> None:
        say("profile: CPU per request in-process, no HTTP server (bench/profile_app.py)")
        env = {**os.environ, "SAHARA_CONFIG_FILES": str(self.project.conf), "SAHARA_API_DRAIN_FILE": str(self.workdir)}
        env |= self.ours_env
        argv = [sys.executable, "-m", "bench.profile_app", str(self.plan.profile_runs), self.project.token]
        argv += ["/v2/plugins", "/v2/clusters"]
        out = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        self.results["db_pool"] = result.pop("db_pool")
        self.results["profile"] = result
        for path, r in self.results["profile"].items():
            top = ", ".join(f"{k} {v:.0%}" for k, v in list(r["shares"].items())[:3])
            say(f"profile: GET {path} {r['cpu_ms_per_req']} ms CPU per request ({top})")
        say(f"profile: DB pool of one API worker {self.results['db_pool']}")

    # -- C1, and the DB burst ------------------------------------------------------------------

    def c1(self, c: Contender) -> None:
        """C1's curve: bursts of N concurrent slow RPCs, c1_runs each, judged against the
        physical bound 2 s + (CPU the burst's requests used) / cores; then the DB burst."""
        p = self.plan
        say(f"{c.name}: C1 curve ({c.label()})")
        try:
            api, _ = self.start(c)
        except Wedged:
            return
        n, phase = p.c1_ns[0], "C1 warm-up"
        try:
            time.sleep(p.idle_settle_s)
            idle = pss_mib(session_procs(api))
            fast_cpu = self.fast_cpu(api)
            # Each worker's first RPC sets up its reply queue and RPC connections: not counted.
            mix = slow_mix(
                api.url,
                self.project.token,
                self.project.cluster_id,
                n,
                p.fast_interval,
                stall=p.wedge_s,
                timeout=p.c1_request_timeout_s,
            )
            if mix.stalled:
                raise Wedged(f"no answer for {p.wedge_s:g} s during a burst of {n} slow requests")
            peak = idle
            for n in p.c1_ns:
                phase = f"C1 N={n}"
                ratios = []
                for run in range(p.c1_runs):
                    row = self.burst(c, api, n, run + 1, fast_cpu)
                    self.results["c1"].append(row)
                    peak = max(peak, pss_mib(session_procs(api)))
                    ratios.append(row["ratio"])
                    if row["ratio"] > p.c1_hopeless:
                        break  # no need for its median
                if median(ratios) > p.c1_give_up:
                    say(f"{c.name}: {n} slow requests took {median(ratios):.1f}x the bound: no larger burst")
                    break
            self.results["c1_memory"].append({"contender": c.name, "idle_mib": idle, "peak_mib": peak})
            say(f"{c.name}: PSS idle {idle} MiB, highest after a burst {peak} MiB")
            phase = "DB burst"
            self.db_burst(c, api)
        except Wedged as e:
            self.wedged(c, api, phase, e.what)
        finally:
            self.stop(c, api)

    def fast_cpu(self, api: Api, count: int = 30) -> float:
        """Server CPU seconds of one fast GET, to take the fast GETs out of a burst's CPU."""
        meter = CpuMeter(api).start()
        for _ in range(count):
            if fast_get(api.url, self.project.token, timeout=self.plan.wedge_s).status == 0:
                raise Wedged(f"a single fast GET got no answer within {self.plan.wedge_s:g} s")
        return meter.stop()[0] / count

    def burst(self, c: Contender, api: Api, n: int, run: int, fast_cpu: float) -> dict:
        cores = os.cpu_count() or 1
        meter = CpuMeter(api).start()
        client0 = own_cpu_seconds()
        with measure.DbPeak([], sample=False) as db:
            mix = slow_mix(
                api.url,
                self.project.token,
                self.project.cluster_id,
                n,
                self.plan.fast_interval,
                limit=120,
                stall=self.plan.wedge_s,
                timeout=self.plan.c1_request_timeout_s,
            )
        if mix.stalled:
            raise Wedged(
                f"no answer for {self.plan.wedge_s:g} s during a burst of {n} slow requests "
                f"({len(mix.slow)} slow and {len(mix.fast)} fast answered before)"
            )
        cpu, busy = meter.stop()
        slow_cpu = max(cpu - len(mix.fast) * fast_cpu, 0.0)
        bound = self.plan.c1_delay + slow_cpu / cores
        # What the rest of the machine (other jobs, and the stack's services) took meanwhile:
        # the cores it left us give a second, load-aware bound, printed beside C1's.
        others = max(busy * cores * mix.total - cpu - (own_cpu_seconds() - client0), 0.0)
        cores_left = max(cores - others / mix.total, 0.25)
        fast = [r.seconds * 1000 for r in mix.fast]
        row = {
            "contender": c.name,
            "slow": n,
            "run": run,
            "all_done_s": round(mix.total, 3),
            "slow_cpu_s": round(slow_cpu, 3),
            "bound_s": round(bound, 3),
            "ratio": round(mix.total / bound, 3),
            "cores_left": round(cores_left, 2),
            "bound_cores_left_s": round(self.plan.c1_delay + slow_cpu / cores_left, 3),
            "errors": sum(1 for r in mix.slow if r.status != 400) + sum(1 for r in mix.fast if r.status != 200),
            "timeouts": sum(1 for r in mix.slow + mix.fast if r.status == 0),
            "fast": len(fast),
            "fast_p50_ms": round(percentile(fast, 50), 1),
            "fast_p99_ms": round(percentile(fast, 99), 1),
            "workers_after": len(api.worker_pids()) if c.kind == "ours" else c.workers,
            "max_used_connections": db.max_used,
            "machine_busy": round(busy, 3),
            "loadavg": loadavg(),
        }
        say(
            f"{c.name}: {n} slow ({self.plan.c1_delay:g} s RPC) run {run}: all done in {row['all_done_s']} s, "
            f"bound {row['bound_s']} s ({row['slow_cpu_s']} CPU-s / {cores} cores) = {row['ratio']}x; "
            f"{row['fast']} fast GETs p99 {row['fast_p99_ms']} ms; {row['errors']} errors; "
            f"MariaDB max used connections {db.max_used}; load {row['loadavg']}"
        )
        return row

    def db_burst(self, c: Contender, api: Api) -> None:
        """`db_burst` concurrent GET /v2/clusters (each reads the DB), all sent at once:
        MariaDB's Max_used_connections and the contender's own peak of DB connections."""
        n, timeout = self.plan.db_burst, self.plan.wedge_s
        with ThreadPoolExecutor(n) as pool, measure.DbPeak(session_procs(api), every=self.plan.db_sample_s) as db:
            t0 = time.monotonic()
            answers = list(
                pool.map(lambda _: fast_get(api.url, self.project.token, "/v2/clusters", timeout=timeout), range(n))
            )
            total = time.monotonic() - t0
        ms = [a.seconds * 1000 for a in answers]
        row = {
            "contender": c.name,
            "requests": n,
            "errors": sum(1 for a in answers if a.status != 200),
            "timeouts": sum(1 for a in answers if a.status == 0),
            "seconds": round(total, 2),
            "p50_ms": round(percentile(ms, 50), 1),
            "p99_ms": round(percentile(ms, 99), 1),
            **db.row(),
            "loadavg": loadavg(),
        }
        self.results["db"].append(row)
        say(
            f"{c.name}: {n} concurrent GET /v2/clusters in {row['seconds']} s, {row['errors']} errors; MariaDB "
            f"Max_used_connections {row['max_used_connections']} (open before: {row['threads_connected_before']}); "
            f"the contender's own DB connections: {row['own_before']} before, at most {row['own_peak']}"
        )
        if row["timeouts"] == n:
            self.check(c, api, f"none of {n} concurrent GET /v2/clusters answered within {timeout:g} s")

    def run(self) -> None:
        p = self.plan
        with self.phase("profile"):
            self.profile()
        for pair in p.pairs:
            with self.phase(f"efficiency {pair}"):
                self.efficiency(pair)
        say(f"C1: {', '.join(map(str, p.c1_ns))} concurrent slow requests with a {p.c1_delay:g} s RPC")
        engine = start_slow_engine(self.project.conf, p.c1_delay, self.workdir / "slow-engine.log")
        try:
            for c in parse(p.c1_contenders):
                with self.phase(f"C1 and DB burst {c.name}"):
                    self.c1(c)
        finally:
            engine.stop(timeout=10)
        with self.phase(f"{C4_PHASE} {p.equal_workers}"):
            self.equal_workers()


def wait_quiet(limit: float, quiet: float) -> dict:
    """Wait up to `limit` s for a 1-minute load average below `quiet`, saying every
    30 s what the machine is busy with."""
    t0, said = time.monotonic(), -30.0
    cpu: dict[int, float] = {}
    while True:
        load, waited = loadavg(), time.monotonic() - t0
        if load < quiet or waited >= limit:
            return {"quiet": load < quiet, "waited_s": round(waited), "load": load, "limit_s": limit}
        if waited - said >= 30:
            now: dict[int, tuple[float, str]] = {}
            for p in psutil.process_iter(["name", "cpu_times"]):
                with contextlib.suppress(TypeError):
                    now[p.pid] = (p.info["cpu_times"].user + p.info["cpu_times"].system, p.info["name"])
            busiest = sorted(((t - cpu.get(pid, t), name) for pid, (t, name) in now.items()), reverse=True)[:3]
            top = ", ".join(f"{name} {s:.1f} CPU-s" for s, name in busiest if s > 0.1)
            say(
                f"waiting for a quiet machine: load average {load} (want < {quiet:g}, "
                f"{limit - waited:.0f} s left)" + (f"; busiest over the last 30 s: {top}" if top else "")
            )
            said = waited
            cpu = {pid: t for pid, (t, _) in now.items()}
        time.sleep(5)


def main() -> None:
    quick = os.environ.get("BENCH_QUICK") == "1"
    plan = QUICK if quick else FULL
    if os.environ.get("BENCH_SECONDS"):
        plan = replace(plan, seconds=float(os.environ["BENCH_SECONDS"]))
    only = os.environ.get("BENCH_CONTENDERS")
    if only:
        plan = only_these(plan, parse(only))
    out = Path(os.environ.get("BENCH_OUT") or (ROOT / (".bench/quick" if quick else "docs"))).resolve()
    ours_env = dict(x.split("=", 1) for x in shlex.split(os.environ.get("BENCH_OURS_ENV", "")))
    t0 = time.monotonic()
    quiet = wait_quiet(float(os.environ.get("BENCH_QUIET_WAIT") or (0 if quick else 600)), plan.quiet_load)
    say(f"{'quick' if quick else 'full'} run; load average {quiet['load']} after waiting {quiet['waited_s']} s")
    meta = {
        "quick": quick,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quiet": quiet,
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
        "machine": machine(),
        "versions": versions(),
        "plan": asdict(plan),
        "only": only,
        "ours_env": ours_env,
        "defaults_env": [f"{key}={value}" for key, value in defaults().items()],
        "chart": chart_defaults(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
    }
    with tempfile.TemporaryDirectory(prefix="sahara-bench-") as tmp, on_the_stack(Path(tmp), plan.clusters) as project:
        bench = Bench(plan, Path(tmp), ours_env, project)
        meta["max_connections"] = int(measure.sql("SHOW VARIABLES LIKE 'max_connections'")[0][1])
        bench.run()
    meta["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    meta["duration_s"] = round(time.monotonic() - t0, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench").mkdir(exist_ok=True)
    results = {"meta": meta, **bench.results}
    path = out / "bench" / "results.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    report.write(results, out)
    say(f"done in {meta['duration_s']:.0f} s: {out / 'benchmarks.md'}, raw results {path}")


def only_these(plan: Plan, cs: list[Contender]) -> Plan:
    """BENCH_CONTENDERS: these in every phase; efficiency pairs each of ours with the upstream
    of as many serving processes among them, and runs the others alone."""
    pairs, paired = [], set()
    for o in (c for c in cs if c.kind == "ours"):
        u = next((u for u in cs if u.kind == "upstream" and u.serving == o.serving and u.name not in paired), None)
        pairs.append(f"{o.name}/{u.name}" if u else o.name)
        paired |= {u.name} if u else set()
    pairs += [u.name for u in cs if u.kind == "upstream" and u.name not in paired]
    names = ",".join(c.name for c in cs)
    return replace(plan, pairs=tuple(pairs), equal_workers=names, c1_contenders=names)


def chart_defaults() -> dict:
    """The chart's default API pods x workers, engine pods and autoscaling ceiling (DB budget)."""
    v = yaml.safe_load(CHART_VALUES.read_text())
    return {
        "api_replicas": v["api"]["replicas"],
        "api_workers": v["api"]["workers"],
        "engine_replicas": v["engine"]["replicas"],
        "autoscaling_max_replicas": v["autoscaling"]["maxReplicas"],
    }


if __name__ == "__main__":
    try:
        main()
    except requests.RequestException as e:
        sys.exit(f"bench: {e}")
