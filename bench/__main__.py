"""make bench: run every scenario against every contender, write the raw
results (JSON) and docs/benchmarks.md with its plots.

Knobs (environment):
  BENCH_QUICK=1        a < 3 min run that checks the harness, not the numbers
  BENCH_OUT=DIR        where results.json, benchmarks.md and the PNGs go
                       (default docs/ for the full run, .bench/quick for the quick one)
  BENCH_CONTENDERS     e.g. ours-4,upstream-4 (default: see FULL and QUICK below)
  BENCH_SECONDS        length of each wrk run
  BENCH_OURS_ENV       extra environment for our contenders, e.g. "UWSGI_THUNDER_LOCK=1"
                       (uWSGI reads UWSGI_<OPTION> variables): how docs/tuning.md A/B runs knobs
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import requests

from bench import measure, report
from bench.contenders import Contender, launch, parse
from harness import ROOT, Api, Proc, ensure_project, keystone_session, read_openrc, start
from workload import fast_get, slow_mix

BENCH_PROJECT = "sahara-bench"  # its own Keystone project: a fixed number of clusters
VHOST = "sahara-bench"  # its own RabbitMQ vhost (scripts/stack.sh creates it)
HERE = ROOT / "tests" / "integration"
# C4: the end of each phase of our start, as uWSGI logs it (log text -> phase).
PHASES = {
    "checks": "*** Starting uWSGI",  # the launcher's checks are done and it has exec'd uWSGI
    "app": "WSGI app 0 (mountpoint='') ready",  # the master has built Sahara's app
    "fork": "spawned uWSGI worker 1 ",  # the first worker is forked
}


@dataclass(frozen=True)
class Plan:
    contenders: str
    clusters: int  # clusters in the benchmark project (GET /v2/clusters lists them)
    seconds: float  # per wrk run
    plugins_concurrency: tuple[int, ...]
    clusters_concurrency: tuple[int, ...]
    slow: int  # concurrent slow requests in scenario (b)
    slow_delay: float
    fast_interval: float
    kills: int
    extra_cold_starts: int
    c1_ns: tuple[int, ...]  # C1's curve: concurrent slow requests
    c1_runs: int  # each point is the median of this many bursts
    c1_delay: float
    c1_contenders: str
    c3_contender: str  # the elastic variant (uWSGI cheaper), bursts from idle
    profile_runs: int  # requests per path in the in-process profile


FULL = Plan(
    # Interleaved so a change in machine load hits both kinds alike.
    contenders="upstream-1,ours-1,upstream-3,ours-2,upstream-4,ours-4",
    clusters=4,
    seconds=5,
    plugins_concurrency=(1, 4, 16, 64),
    clusters_concurrency=(16,),
    slow=16,
    slow_delay=1.0,
    fast_interval=0.05,
    kills=3,
    extra_cold_starts=2,
    c1_ns=(16, 32, 64, 128),
    c1_runs=3,
    c1_delay=2.0,
    # Ours as shipped, ours before issue 15 (8 threads, no write slots), upstream at 4, 8, 16 workers.
    c1_contenders="ours-2,ours-2+old,upstream-4,upstream-8,upstream-16",
    c3_contender="ours-2+elastic",
    profile_runs=200,
)
# The harness check for `make test`: FULL with one small pair and short runs.
QUICK = replace(
    FULL,
    contenders="upstream-2,ours-2",
    seconds=2,
    plugins_concurrency=(8,),
    clusters_concurrency=(8,),
    slow=4,
    kills=1,
    extra_cold_starts=2,
    c1_ns=(16, 64),
    c1_contenders="ours-2,upstream-2",
    profile_runs=30,
)
# A C1 curve stops for a contender once its median burst takes this many times its bound,
# and does not repeat a burst that took C1_HOPELESS times it.
C1_GIVE_UP, C1_HOPELESS = 2.0, 3.0
# C3: how long the elastic variant may take to be back at one worker after a burst.
BACK_TO_ONE_S = 30.0


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


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


STACK = ROOT / "scripts" / "stack.sh"
# Like the tests: `down` at the end stops only what this run started.
STACK_ENV = {**os.environ, "STACK_STARTED": str(ROOT / ".stack" / "started.bench")}


class Stack:
    """The local stack's pieces the benchmark needs: config, token, clusters."""

    def __init__(self, workdir: Path, clusters: int) -> None:
        say("stack: scripts/stack.sh up (reuses running services)")
        subprocess.run([str(STACK), "up"], env=STACK_ENV, check=True, timeout=1200, stdout=subprocess.DEVNULL)
        text = (ROOT / "etc" / "sahara" / "sahara.conf").read_text()
        # Our own RabbitMQ vhost: no sahara-engine of `make run` or of a test answers our RPCs.
        self.conf = workdir / "sahara.conf"
        self.conf.write_text(text.replace("@127.0.0.1:5672/", f"@127.0.0.1:5672/{VHOST}"))
        openrc = read_openrc()
        self.project_id = ensure_project(openrc, BENCH_PROJECT, "make bench")
        self.token = keystone_session(openrc, BENCH_PROJECT).get_token()
        self.clusters = clusters
        say(f"stack: project {BENCH_PROJECT} with {clusters} clusters")
        self.ensure_clusters()

    def ensure_clusters(self) -> None:
        """Create clusters until the project has its number again (other test runs may wipe the table)."""
        argv = [sys.executable, str(HERE / "make_cluster.py"), "--config-file", str(self.conf)]
        argv += ["--project-id", self.project_id, "--at-least", str(self.clusters)]
        out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120)
        self.cluster_id = out.stdout.strip().splitlines()[-1]

    def count_clusters(self, api: Api, tries: int = 3) -> int:
        """Between wrk runs a loaded server may still be draining its backlog: retry."""
        for attempt in range(tries):
            try:
                r = requests.get(f"{api.url}/v2/clusters", headers={"X-Auth-Token": self.token}, timeout=30)
                r.raise_for_status()
                return len(r.json()["clusters"])
            except requests.RequestException as e:
                if attempt == tries - 1:
                    raise
                say(f"stack: counting the clusters failed ({e.__class__.__name__}), retrying in 5 s")
                time.sleep(5)
        raise AssertionError("unreachable")


class SlowEngine:
    def __init__(self, conf: Path, delay: float, workdir: Path) -> None:
        self.delay = delay
        argv = [sys.executable, str(HERE / "slow_engine.py"), "--config-file", str(conf), "--delay", str(delay)]
        self.proc: Proc = start("slow-engine", argv, workdir / f"slow-engine-{delay}.log", dict(os.environ))
        deadline = time.monotonic() + 60
        while "slow engine ready" not in self.proc.log_text():
            if self.proc.popen.poll() is not None or time.monotonic() > deadline:
                self.proc.stop(timeout=5)
                raise RuntimeError(f"slow engine did not start:\n{self.proc.log_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.stop(timeout=10)


class Bench:
    def __init__(self, plan: Plan, workdir: Path, ours_env: dict[str, str]) -> None:
        self.plan, self.workdir, self.ours_env = plan, workdir, ours_env
        self.stack = Stack(workdir, plan.clusters)
        self.results: dict = {
            "cpu": [],
            "slow": [],
            "c1": [],
            "c1_memory": [],
            "c3": [],
            "memory": [],
            "cold_start": [],
            "respawn": [],
            "unexpected_deaths": [],
        }

    def start(self, c: Contender) -> tuple[Api, float]:
        """Start and wait for the first 200 of an authenticated GET; returns (api, cold start s).
        For ours, also when each phase of the start ended (uWSGI's own log lines)."""
        api, t0 = launch(c, self.stack.conf, self.workdir, self.ours_env if c.kind == "ours" else {})
        watch = measure.LogWatch(api, t0, PHASES if c.kind == "ours" else {})
        try:
            listening = measure.listening(api.port, t0, api)
            cold = measure.first_200(f"{api.url}/v2/plugins", self.stack.token, t0, api)
            measure.wait_children(api, c.children)
        except Exception:
            api.stop()
            raise
        finally:
            phases = watch.stop()
        self.results["cold_start"].append(
            {"contender": c.name, "listening_s": round(listening, 3), "seconds": round(cold, 3), "phases": phases}
        )
        return api, cold

    def contender(self, c: Contender) -> None:
        p, token = self.plan, self.stack.token
        say(f"{c.name}: starting ({c.label()})")
        api, cold = self.start(c)
        try:
            time.sleep(1)
            idle = measure.pss_mib(measure.session_procs(api))
            say(f"{c.name}: first 200 after {cold:.2f} s; idle PSS {idle} MiB")
            measure.wrk(f"{api.url}/v2/plugins", token, 8, 2, True, api)  # warm every worker up
            for path, levels in (("/v2/plugins", p.plugins_concurrency), ("/v2/clusters", p.clusters_concurrency)):
                for close in (True, False):
                    for conns in levels:
                        if path == "/v2/clusters" and self.stack.count_clusters(api) != p.clusters:
                            say(f"stack: the clusters of {BENCH_PROJECT} changed under us; making {p.clusters} again")
                            self.stack.ensure_clusters()
                        r = measure.wrk(f"{api.url}{path}", token, conns, p.seconds, close, api)
                        row = {"contender": c.name, "path": path, "close": close, "connections": conns, **r}
                        if path == "/v2/clusters":
                            row["clusters_after"] = self.stack.count_clusters(api)
                        self.results["cpu"].append(row)
                        say(
                            f"{c.name}: GET {path} c={conns} {'close' if close else 'keep-alive'}: "
                            f"{r['rps']} req/s p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms "
                            f"errors {r['errors']} (API CPU {r['api_cpu_ms_per_req']} ms/req, load {r['loadavg']})"
                        )
            loaded = measure.pss_mib(measure.session_procs(api))
            self.results["memory"].append(
                {
                    "contender": c.name,
                    "processes": len(measure.session_procs(api)),
                    "idle_mib": idle,
                    "after_load_mib": loaded,
                }
            )
            say(f"{c.name}: PSS after load {loaded} MiB")
            self.slow(c, api, self.results["slow"], p.slow)
            for i in range(p.kills):
                r = measure.kill_worker(api, f"{api.url}/v2/plugins", token)
                self.results["respawn"].append({"contender": c.name, "attempt": i + 1, **asdict(r)})
                say(
                    f"{c.name}: kill -9 of a worker: new process after {r.new_process_s:.3f} s, "
                    f"waiting for connections after {r.accepting_s:.3f} s, {r.failed}/{r.requests} requests failed"
                )
        finally:
            self.note_deaths(c, api)
            api.stop()
        for _ in range(p.extra_cold_starts):
            api, cold = self.start(c)
            api.stop()
            say(f"{c.name}: cold start again: first 200 after {cold:.2f} s")

    def slow(self, c: Contender, api: Api, into: list, slow: int, run: str = "") -> None:
        if self.stack.count_clusters(api) != self.plan.clusters:
            self.stack.ensure_clusters()  # the scale requests need their cluster
        mix = slow_mix(api.url, self.stack.token, self.stack.cluster_id, slow, self.plan.fast_interval)
        fast = [r.seconds * 1000 for r in mix.fast]
        row = {
            "contender": c.name,
            "run": run,
            "delay_s": self.engine.delay,
            "slow": slow,
            "slow_total_s": round(mix.total, 3),
            "slow_max_s": round(max(r.seconds for r in mix.slow), 3),
            "slow_per_s": round(slow / mix.total, 2),
            "slow_errors": sum(1 for r in mix.slow if r.status != 400),
            "fast": len(fast),
            "fast_p50_ms": round(measure.percentile(fast, 50), 1),
            "fast_p99_ms": round(measure.percentile(fast, 99), 1),
            "fast_max_ms": round(max(fast, default=float("nan")), 1),
            "fast_errors": sum(1 for r in mix.fast if r.status != 200),
            "loadavg": measure.loadavg(),
        }
        into.append(row)
        say(
            f"{c.name}: {run + ': ' if run else ''}{slow} slow requests ({self.engine.delay:g} s RPC) "
            f"done in {row['slow_total_s']} s "
            f"(max {row['slow_max_s']} s, {row['slow_errors']} errors); {row['fast']} fast GETs meanwhile "
            f"p50 {row['fast_p50_ms']} ms p99 {row['fast_p99_ms']} ms ({row['fast_errors']} errors)"
        )

    def note_deaths(self, c: Contender, api: Api) -> None:
        """Worker deaths the benchmark did not cause (uWSGI logs each one)."""
        kills = sum(1 for r in self.results["respawn"] if r["contender"] == c.name)
        deaths = api.log_text().count("DAMN ! worker")
        if c.kind == "ours" and deaths > kills:
            self.results["unexpected_deaths"].append({"contender": c.name, "count": deaths - kills})
            say(f"{c.name}: WARNING {deaths - kills} worker death(s) not caused by the benchmark (see {api.log})")

    def profile(self) -> None:
        say("profile: CPU per request in-process, no HTTP server (bench/profile_app.py)")
        env = {**os.environ, "SAHARA_CONFIG_FILES": str(self.stack.conf), "SAHARA_API_DRAIN_FILE": str(self.workdir)}
        argv = [sys.executable, "-m", "bench.profile_app", str(self.plan.profile_runs), self.stack.token]
        argv += ["/v2/plugins", "/v2/clusters"]
        out = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
        self.results["profile"] = json.loads(out.stdout.strip().splitlines()[-1])
        for path, r in self.results["profile"].items():
            top = ", ".join(f"{k} {v:.0%}" for k, v in list(r["shares"].items())[:3])
            say(f"profile: GET {path} {r['cpu_ms_per_req']} ms CPU per request ({top})")

    def c1(self, c: Contender) -> None:
        """C1's curve: bursts of N concurrent slow RPCs, c1_runs each, judged against the
        physical bound 2 s + (CPU the burst's requests used) / cores."""
        p = self.plan
        say(f"{c.name}: C1 curve ({c.label()})")
        api, _ = self.start(c)
        try:
            time.sleep(1)
            idle = measure.pss_mib(measure.session_procs(api))
            fast_cpu = self.fast_cpu(api)
            # Each worker's first RPC sets up its reply queue and RPC connections: not counted.
            slow_mix(api.url, self.stack.token, self.stack.cluster_id, p.c1_ns[0], p.fast_interval)
            peak = idle
            for n in p.c1_ns:
                ratios = []
                for run in range(p.c1_runs):
                    row = self.burst(c, api, n, run + 1, fast_cpu)
                    self.results["c1"].append(row)
                    peak = max(peak, measure.pss_mib(measure.session_procs(api)))
                    ratios.append(row["ratio"])
                    if row["ratio"] > C1_HOPELESS:
                        break  # no need for its median
                if measure.median(ratios) > C1_GIVE_UP:
                    say(f"{c.name}: {n} slow requests took {measure.median(ratios):.1f}x the bound: no larger burst")
                    break
            self.results["c1_memory"].append({"contender": c.name, "idle_mib": idle, "peak_mib": peak})
            say(f"{c.name}: PSS idle {idle} MiB, highest after a burst {peak} MiB")
        finally:
            api.stop()

    def fast_cpu(self, api: Api, count: int = 30) -> float:
        """Server CPU seconds of one fast GET, to take the fast GETs out of a burst's CPU."""
        meter = measure.CpuMeter(api).start()
        for _ in range(count):
            fast_get(api.url, self.stack.token)
        return meter.stop()[0] / count

    def burst(self, c: Contender, api: Api, n: int, run: int, fast_cpu: float) -> dict:
        cores = os.cpu_count() or 1
        meter = measure.CpuMeter(api).start()
        client0 = measure.own_cpu_seconds()
        mix = slow_mix(api.url, self.stack.token, self.stack.cluster_id, n, self.plan.fast_interval, limit=120)
        cpu, busy = meter.stop()
        slow_cpu = max(cpu - len(mix.fast) * fast_cpu, 0.0)
        bound = self.engine.delay + slow_cpu / cores
        # What the rest of the machine (other jobs, and the stack's services) took meanwhile:
        # the cores it left us give a second, load-aware bound, printed beside C1's.
        others = max(busy * cores * mix.total - cpu - (measure.own_cpu_seconds() - client0), 0.0)
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
            "bound_cores_left_s": round(self.engine.delay + slow_cpu / cores_left, 3),
            "errors": sum(1 for r in mix.slow if r.status != 400) + sum(1 for r in mix.fast if r.status != 200),
            "fast": len(fast),
            "fast_p50_ms": round(measure.percentile(fast, 50), 1),
            "fast_p99_ms": round(measure.percentile(fast, 99), 1),
            "workers_after": measure.worker_count(api) if c.kind == "ours" else c.workers,
            "machine_busy": round(busy, 3),
            "loadavg": measure.loadavg(),
        }
        say(
            f"{c.name}: {n} slow ({self.engine.delay:g} s RPC) run {run}: all done in {row['all_done_s']} s, "
            f"bound {row['bound_s']} s ({row['slow_cpu_s']} CPU-s / {cores} cores) = {row['ratio']}x; "
            f"{row['fast']} fast GETs p99 {row['fast_p99_ms']} ms; {row['errors']} errors; load {row['loadavg']}"
        )
        return row

    def c3(self, c: Contender) -> None:
        """C3: the elastic variant, idle at one worker; bursts of the largest C1 size from
        idle, and how long until it is back at one worker."""
        p = self.plan
        n = max(x for x in p.c1_ns if x <= 64)
        say(f"{c.name}: C3 elastic ({c.label()})")
        api, _ = self.start(c)
        try:
            fast_cpu = self.fast_cpu(api)
            slow_mix(api.url, self.stack.token, self.stack.cluster_id, p.c1_ns[0], p.fast_interval)
            for run in range(p.c1_runs):
                self.back_to_one(api)
                time.sleep(1)
                workers, idle = measure.worker_count(api), measure.pss_mib(measure.session_procs(api))
                row = self.burst(c, api, n, run + 1, fast_cpu)
                row |= {"idle_workers": workers, "idle_mib": idle, "back_to_one_s": self.back_to_one(api)}
                self.results["c3"].append(row)
                say(
                    f"{c.name}: from {workers} worker(s), {idle} MiB: {row['workers_after']} workers "
                    f"after the burst, back to one after {row['back_to_one_s']} s"
                )
                if row["back_to_one_s"] is None:
                    say(
                        f"{c.name}: still {measure.worker_count(api)} workers {BACK_TO_ONE_S:g} s after: no more bursts"
                    )
                    break
        finally:
            api.stop()

    def back_to_one(self, api: Api, limit: float = BACK_TO_ONE_S) -> float | None:
        t0 = time.monotonic()
        while measure.worker_count(api) > 1:
            if time.monotonic() - t0 > limit:
                return None
            time.sleep(0.2)
        return round(time.monotonic() - t0, 1)

    def run(self) -> None:
        p = self.plan
        self.profile()
        self.engine = SlowEngine(self.stack.conf, p.slow_delay, self.workdir)
        try:
            for c in parse(p.contenders):
                self.contender(c)
        finally:
            self.engine.stop()
        say(f"C1: {', '.join(map(str, p.c1_ns))} concurrent slow requests with a {p.c1_delay:g} s RPC")
        self.engine = SlowEngine(self.stack.conf, p.c1_delay, self.workdir)
        try:
            for c in parse(p.c1_contenders):
                self.c1(c)
            if p.c3_contender:
                self.c3(parse(p.c3_contender)[0])
        finally:
            self.engine.stop()


def main() -> None:
    quick = os.environ.get("BENCH_QUICK") == "1"
    plan = QUICK if quick else FULL
    if os.environ.get("BENCH_SECONDS"):
        plan = Plan(**{**asdict(plan), "seconds": float(os.environ["BENCH_SECONDS"])})
    if os.environ.get("BENCH_CONTENDERS"):
        names = os.environ["BENCH_CONTENDERS"]
        plan = Plan(**{**asdict(plan), "contenders": names, "c1_contenders": names})
    out = Path(os.environ.get("BENCH_OUT") or (ROOT / (".bench/quick" if quick else "docs"))).resolve()
    ours_env = dict(x.split("=", 1) for x in shlex.split(os.environ.get("BENCH_OURS_ENV", "")))
    t0 = time.monotonic()
    meta = {
        "quick": quick,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
        "machine": machine(),
        "versions": versions(),
        "plan": asdict(plan),
        "ours_env": ours_env,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
    }
    say(f"{'quick' if quick else 'full'} run, contenders {plan.contenders}; load average {meta['loadavg_start']}")
    try:
        with tempfile.TemporaryDirectory(prefix="sahara-bench-") as tmp:
            bench = Bench(plan, Path(tmp), ours_env)
            bench.run()
    finally:
        subprocess.run([str(STACK), "down"], env=STACK_ENV, check=False, timeout=300)
    meta["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    meta["duration_s"] = round(time.monotonic() - t0, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench").mkdir(exist_ok=True)
    results = {"meta": meta, **bench.results}
    path = out / "bench" / "results.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    report.write(results, out)
    say(f"done in {meta['duration_s']:.0f} s: {out / 'benchmarks.md'}, raw results {path}")


if __name__ == "__main__":
    try:
        main()
    except requests.RequestException as e:
        sys.exit(f"bench: {e}")
