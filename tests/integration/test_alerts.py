"""The alert rules (deploy/prometheus/sahara-api-alerts.yml) and the Grafana
dashboard against a real Prometheus scraping real API instances: each
condition is caused for real (stuck requests, a flood of slow engine calls,
killed workers, a killed exporter, a fat worker, a stopped API), and the
matching alert must fire, alone, then resolve.

Production durations (minutes) would make this take an hour, so Prometheus
loads the same file with every `for:` and range window divided by SCALE and
scrapes and evaluates every second; tests/unit/test_alert_rules.py checks the
production values with promtool. Timings are generous: the machine is shared.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from harness import ROOT
from harness.procs import Api, wait_for
from harness.prometheus import Prometheus
from harness.workload import fast_get, scale, warm

RULES = ROOT / "deploy" / "prometheus" / "sahara-api-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "sahara-api-dashboard.json"
SCALE = 60  # 1 minute of the rules file = 1 second here
INTERVAL = 1.0  # Prometheus' scrape and evaluation interval here (s)
# Slack on top of `for:` + 2 scrape intervals: evaluation, polling, a loaded machine.
SLACK = 6.0
DELAY = 15.0  # the slow engine's answer: longer than the scaled `for:` of SaharaApiSaturated
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
DURATION = re.compile(r"(\d+)(ms|s|m|h)")


def seconds(duration: str) -> float:
    return sum(int(n) * UNITS[u] for n, u in DURATION.findall(duration))


def scaled_rules(path: Path) -> dict[str, float]:
    """Write the rules file with its durations divided by SCALE; alert -> scaled `for:` (s)."""
    doc = yaml.safe_load(RULES.read_text())
    fors = {}
    for rule in doc["groups"][0]["rules"]:
        rule["expr"] = re.sub(r"\[(\w+)\]", lambda m: f"[{int(seconds(m[1]) * 1000 / SCALE)}ms]", rule["expr"])
        fors[rule["alert"]] = seconds(rule.get("for", "0s")) / SCALE
        if "for" in rule:
            rule["for"] = f"{int(fors[rule['alert']] * 1000)}ms"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return fors


def rule_exprs(path: Path) -> dict[str, str]:
    """Alert -> its expression, as Prometheus loaded it from `path`."""
    return {r["alert"]: r["expr"] for r in yaml.safe_load(path.read_text())["groups"][0]["rules"]}


def dashboard_queries(rate_interval: str) -> list[str]:
    """Every panel's PromQL as Grafana would send it for job sahara-api, all instances."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    subs = {"$job": "sahara-api", "$instance": ".*", "$__rate_interval": rate_interval}
    for var, value in subs.items():
        exprs = [e.replace(var, value) for e in exprs]
    return exprs


@dataclass
class Result:
    alert: str
    fired: float  # condition caused -> firing (s)
    resolved: float  # condition over -> gone (s)


class Chaos:
    """Runs one scenario at a time and times its alert through Prometheus' API."""

    def __init__(self, prom: Prometheus, fors: dict[str, float]) -> None:
        self.prom, self.fors = prom, fors
        self.results: list[Result] = []
        self.events: list[tuple[float, str]] = []  # wall clock, label: for the plot
        self.panels_with_data: set[str] = set()
        self.queries = dashboard_queries(f"{int(5 * INTERVAL)}s")

    def check_panels(self) -> None:
        self.panels_with_data |= {q for q in self.queries if self.prom.query(q)}

    def quiet(self, timeout: float = 60) -> None:
        """No alert pending or firing (a scenario's aftermath is over)."""
        deadline = time.monotonic() + timeout
        while alerts := self.prom.alerts():
            assert time.monotonic() < deadline, f"alerts still active: {alerts}"
            time.sleep(0.25)

    def run(self, alert: str, setup: float, cause: Callable[[], None], end: Callable[[], None]) -> Result:
        """cause() the condition, which takes up to `setup` s to be true; the alert must
        fire within setup + for + 2 scrapes (+ SLACK) with no other alert firing;
        end() it; the alert must then clear."""
        self.quiet()
        fire_within = setup + self.fors[alert] + 2 * INTERVAL + SLACK
        self.events.append((time.time(), f"{alert}: cause"))
        t0 = time.monotonic()
        cause()
        while (states := self.prom.alerts()).get(alert) != "firing":
            self.assert_alone(alert, states)
            assert time.monotonic() - t0 < fire_within, f"{alert} did not fire within {fire_within:.0f} s: {states}"
            time.sleep(0.2)
        fired = time.monotonic() - t0
        self.assert_alone(alert, states)
        self.check_panels()
        end()  # returns once the condition is over (e.g. the slow requests answered)
        self.events.append((time.time(), f"{alert}: over"))
        t1 = time.monotonic()
        while alert in (states := self.prom.alerts()):
            self.assert_alone(alert, states)
            assert time.monotonic() - t1 < 90, f"{alert} did not resolve: {states}"
            time.sleep(0.2)
        result = Result(alert, fired, time.monotonic() - t1)
        print(
            f"\n{alert}: fired {result.fired:.1f} s after the cause (for: {self.fors[alert]:g} s), "
            f"resolved {result.resolved:.1f} s after it was over"
        )
        self.results.append(result)
        return result

    @staticmethod
    def assert_alone(alert: str, states: dict[str, str]) -> None:
        others = {a: s for a, s in states.items() if a != alert and s == "firing"}
        assert not others, f"while causing {alert}, others fired: {others}"


def target(api: Api) -> str:
    return f"127.0.0.1:{api.environ['SAHARA_METRICS_PORT']}"


class Repeat:
    """action() every `every` s in a thread, between start() and stop()."""

    def __init__(self, action: Callable[[], None], every: float) -> None:
        self.action, self.every = action, every
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.wait(self.every):
            self.action()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def exporter_pids(api: Api) -> list[int]:
    """The master's child running the exporter (or its respawn); not nginx, the other daemon."""
    try:
        children = psutil.Process(api.master).children()
    except psutil.NoSuchProcess:
        return []
    pids = []
    for child in children:
        try:
            if any("sahara_api_metrics.py" in arg for arg in child.cmdline()):
                pids.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return pids


@pytest.mark.timeout(600)
def test_each_alert_fires_alone_and_resolves(launch, slow_engine, make_cluster, token, prometheus, tmp_path) -> None:
    t_start = time.time()
    slow_engine(DELAY)
    small = {"SAHARA_API_WORKERS": 2, "SAHARA_API_THREADS": 2}  # 4 threads: few requests saturate it
    # A run dir each: launch() gives every instance of a test the same one, and
    # the second uWSGI would take over the first one's stats socket.
    # a serves directly: uWSGI measures the listen queue on TCP sockets only,
    # so SaharaApiListenQueue is an alert of the `direct` front (metrics.md).
    a = launch(
        **small,
        SAHARA_API_FRONT="direct",
        SAHARA_API_TIMEOUT=60,
        SAHARA_API_STOP_TIMEOUT=70,
        SAHARA_RUN_DIR=tmp_path / "run-a",
    )
    b = launch(**small, SAHARA_API_TIMEOUT=3, SAHARA_API_STOP_TIMEOUT=10, SAHARA_RUN_DIR=tmp_path / "run-b")
    fors = scaled_rules(tmp_path / "rules.yml")
    prom = prometheus([tmp_path / "rules.yml"], INTERVAL, (target(a), target(b)))
    prom.wait('count(up{job="sahara-api"} == 1) == 2', timeout=60)
    chaos = Chaos(prom, fors)
    cluster = make_cluster()
    threads = small["SAHARA_API_WORKERS"] * small["SAHARA_API_THREADS"]

    warm(a.url, token, at_once=threads)  # 4 at a time: the warm-up itself does not fill the listen queue
    warm(b.url, token, at_once=threads)
    pool = ThreadPoolExecutor(32)

    # 1. As many slow engine calls as a has threads.
    slow = []
    chaos.run(
        "SaharaApiSaturated",
        1,
        lambda: slow.extend(pool.submit(scale, a.url, token, cluster) for _ in range(threads)),
        lambda: [f.result() for f in slow],
    )
    assert all(f.result().status == 400 for f in slow), "each slow call got the engine's answer"

    # 2. The same, plus 8 fast requests that wait in the listen queue behind them.
    queued = []

    def flood() -> None:
        queued.extend(pool.submit(scale, a.url, token, cluster) for _ in range(threads))
        time.sleep(0.3)
        queued.extend(pool.submit(fast_get, a.url, token) for _ in range(8))

    chaos.run("SaharaApiListenQueue", 2, flood, lambda: [f.result() for f in queued])
    assert [f.result().status for f in queued] == [400] * threads + [200] * 8

    # 3. A request stuck on the engine past SAHARA_API_TIMEOUT (3 s on b).
    stuck = []
    chaos.run("SaharaApiHarakiri", 3, lambda: stuck.append(pool.submit(scale, b.url, token, cluster)), lambda: None)
    # b's nginx front answers 502 for the request harakiri cut.
    assert stuck[0].result().status == 502, "harakiri cut the request"

    # 4. Workers killed over and over.
    def kill_a_worker() -> None:
        if pids := a.worker_pids():
            kill_quietly(min(pids))

    storm = Repeat(kill_a_worker, 0.3)

    def storm_over() -> None:
        # Over once a has every worker back and Prometheus has scraped a flat
        # respawn counter for a whole window of the rule: a master throttling
        # respawns ("respawning too fast") answers no stats, so the alert lost
        # its data and seemed resolved, then the window spanned the gap once
        # the stats came back, and it fired again in the next scenario.
        storm.stop()
        wait_for(lambda: len(a.worker_pids()) == 2, 60, "a's 2 workers back after the storm")
        window = re.search(r"\[(\w+)\]", rule_exprs(tmp_path / "rules.yml")["SaharaApiRespawnStorm"])[1]
        instance = f'instance="{target(a)}"'
        prom.wait(
            f"sum(changes(uwsgi_worker_respawn_count_total{{{instance}}}[{window}])) == 0"
            f" and on () min_over_time(up{{{instance}}}[{window}]) == 1",
            timeout=60,
        )

    chaos.run("SaharaApiRespawnStorm", 3, storm.start, storm_over)
    a.wait_ready(timeout=60)

    # 5. a's exporter killed whenever it is back (uWSGI's master restarts it);
    # b still answers, so it is a's exporter that is down, not the whole API.
    def kill_exporter() -> None:
        for pid in exporter_pids(a):
            kill_quietly(pid)

    exporter_killer = Repeat(kill_exporter, 0.1)
    chaos.run("SaharaApiMetricsDown", 1, exporter_killer.start, exporter_killer.stop)

    # 6. A worker above 90% of its RSS limit (20 MB here: every worker is; it
    # gets no request after start-up, so reload-on-rss never recycles it).
    c = launch(SAHARA_API_WORKERS=1, SAHARA_API_THREADS=1, SAHARA_API_MAX_RSS_MB=20, SAHARA_RUN_DIR=tmp_path / "run-c")
    # The cause is scraping c: Prometheus sees a new file_sd target within ~5 s. (Scraping
    # it before run() let a loaded machine evaluate the alert before run() checked quiet.)
    chaos.run(
        "SaharaApiWorkerMemoryHigh",
        6,
        lambda: prom.scrape(target(a), target(b), target(c)),
        lambda: prom.scrape(target(a), target(b)),
    )
    c.stop()

    chaos.check_panels()
    missing = set(chaos.queries) - chaos.panels_with_data
    assert not missing, f"dashboard queries that never returned data: {missing}"

    # 7. The API stopped: with b out of the targets, a is the only instance; stopping
    # it stops its exporter too. It resolves once an instance (b) is scraped again.
    prom.scrape(target(a))
    prom.wait(f'count(up{{job="sahara-api"}}) == 1 and on () up{{instance="{target(a)}"}} == 1', timeout=30)
    time.sleep(2 * INTERVAL)
    chaos.run("SaharaApiDown", 2, a.stop, lambda: prom.scrape(target(b)))

    pool.shutdown()
    t_end = time.time()
    print(f"\nlive alert test: {t_end - t_start:.0f} s; {len(chaos.results)} alerts fired alone and resolved")
    assert {r.alert for r in chaos.results} == set(fors), "every alert of the file was caused"
    plot = os.environ.get("SAHARA_INCIDENT_PLOT", str(tmp_path / "incident.png"))
    incident_plot(prom, t_start, t_end, chaos, Path(plot), {target(a): "a", target(b): "b", target(c): "c"})
    print(f"incident plot: {plot}")


def incident_plot(prom: Prometheus, start: float, end: float, chaos: Chaos, path: Path, names: dict[str, str]) -> None:
    """Busy threads, listen queue, respawns and alert states over the run, from
    Prometheus' range queries (what a Grafana would show), with each cause marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(promql: str) -> list[dict]:
        return prom.api("query_range", query=promql, start=str(start), end=str(end), step=str(INTERVAL))["result"]

    panels = [
        ("busy threads", 'sum by (instance) (uwsgi_worker_cores_busy{job="sahara-api"})'),
        ("listen queue", 'uwsgi_listen_queue_length{job="sahara-api"}'),
        ("worker respawns\n(counter)", 'sum by (instance) (uwsgi_worker_respawn_count_total{job="sahara-api"})'),
    ]
    alerts = sorted(chaos.fors)
    fig, axes = plt.subplots(
        len(panels) + 1, 1, sharex=True, figsize=(11, 10), gridspec_kw={"height_ratios": [2, 2, 2, 3]}
    )
    for ax, (title, promql) in zip(axes, panels, strict=False):
        for s in series(promql):
            t = [float(v[0]) - start for v in s["values"]]
            y = [float(v[1]) for v in s["values"]]
            ax.step(t, y, where="post", label=f"instance {names.get(s['metric'].get('instance', ''), '?')}")
        ax.set_ylabel(title)
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    ax = axes[-1]
    for row, name in enumerate(alerts):
        for state, width, color in (("pending", 3, "orange"), ("firing", 9, "red")):
            for s in series(f'max(ALERTS{{alertname="{name}", alertstate="{state}"}})'):
                t = [float(v[0]) - start for v in s["values"]]
                ax.hlines([row] * len(t), t, [x + INTERVAL for x in t], colors=color, linewidth=width)
    ax.set_yticks(range(len(alerts)), alerts, fontsize=8)
    ax.set_ylim(-0.5, len(alerts) - 0.5)
    ax.set_xlabel("seconds since the test started (orange: pending, red: firing)")
    ax.grid(alpha=0.3)
    for wall, label in chaos.events:
        if label.endswith("cause"):
            for a in axes:
                a.axvline(wall - start, color="grey", linestyle=":", linewidth=0.8)
            axes[0].annotate(
                label.split(":")[0].removeprefix("SaharaApi"),
                (wall - start, 1),
                xycoords=("data", "axes fraction"),
                rotation=90,
                fontsize=7,
                va="top",
            )
    fig.suptitle(f"Live chaos run under Prometheus (durations of the rules / {SCALE})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
