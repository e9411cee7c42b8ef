"""Prometheus metrics (docs/metrics.md): the exporter uWSGI's master runs,
scraped while requests are served, workers are killed and requests stick.
Each test reads like the runbook: scrape, act, scrape again, compare."""

from __future__ import annotations

import os
import signal
import stat
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness import ROOT
from harness.procs import Api, assert_dies_with_killed_master, free_port, start, wait_for
from harness.workload import fast_get, scale_request, warm
from sahara_api_knobs import settings

Samples = dict[str, dict[str, float]]  # metric sample name -> worker_id ("" if none) -> value


def metrics_url(api: Api) -> str:
    return f"http://127.0.0.1:{api.environ['SAHARA_METRICS_PORT']}/metrics"


def scrape(url: str) -> Samples:
    """One scrape, parsed by prometheus_client's own parser."""
    r = requests.get(url, timeout=10)
    r.raise_for_status()
    samples: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples.setdefault(s.name, {})[s.labels.get("worker_id", "")] = s.value
    return samples


def total(samples: Samples, name: str) -> float:
    return sum(samples[name].values())


def wait_scrape(url: str, timeout: float = 30) -> Samples:
    """The first scrape: the exporter starts with the master, the workers load the app."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return scrape(url)
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def exporter(api: Api) -> psutil.Process:
    """The master's child that is neither a worker nor the front (nginx)."""
    workers = api.worker_pids()
    (proc,) = (p for p in psutil.Process(api.master).children() if p.pid not in workers and p.name() != "nginx")
    return proc


@pytest.mark.modes("single", "multi", "supervisord", "container")
def test_metrics_in_every_uwsgi_mode(api) -> None:
    """The same exporter under the launcher, supervisord and the image (debug mode has no uWSGI)."""
    samples = wait_scrape(metrics_url(api))
    assert samples["uwsgi_up"][""] == 1
    assert samples["uwsgi_workers"][""] == int(api.environ["SAHARA_API_WORKERS"])


@pytest.mark.modes("multi", "supervisord", "container")
def test_prometheus_scrapes_every_uwsgi_mode(api, prometheus) -> None:
    """Debian's Prometheus scrapes the exporter as an operator's would."""
    prom = prometheus()
    prom.scrape(f"127.0.0.1:{api.environ['SAHARA_METRICS_PORT']}")
    workers = int(api.environ["SAHARA_API_WORKERS"])
    t0 = time.monotonic()
    (up,) = prom.wait('up{job="sahara-api"} == 1 and on (instance) uwsgi_up == 1')
    print(f"\nscraped by Prometheus {time.monotonic() - t0:.1f} s after the target was set: {up['metric']}")
    assert prom.query("uwsgi_workers")[0]["value"][1] == str(workers)
    assert len(prom.query("uwsgi_worker_requests_total")) == workers
    limit = prom.query("sahara_api_worker_rss_limit_bytes")[0]["value"][1]
    assert int(limit) == int(api.environ.get("SAHARA_API_MAX_RSS_MB", 512)) * 2**20, "SAHARA_API_MAX_RSS_MB"


def test_requests_and_memory_are_reported(launch, token) -> None:
    # uWSGI measures listen queues of TCP sockets only: behind nginx (a unix socket) they read 0 (metrics.md).
    api = launch(SAHARA_API_WORKERS=4, SAHARA_API_FRONT="direct")
    url = metrics_url(api)
    before = wait_scrape(url)
    served = 20
    for _ in range(served):
        assert fast_get(api.url, token).status == 200
    # A worker counts a request once it has closed it, which may come just after the client has its answer.
    wait_for(lambda: total(scrape(url), "uwsgi_worker_requests_total") - total(before, "uwsgi_worker_requests_total")
             >= served, 5, "every request counted")  # fmt: skip
    after = scrape(url)
    grown = total(after, "uwsgi_worker_requests_total") - total(before, "uwsgi_worker_requests_total")
    print(f"\n{served} requests served: uwsgi_worker_requests_total grew by {grown:.0f}")
    assert after["uwsgi_up"][""] == 1
    assert after["uwsgi_workers"][""] == 4
    assert sorted(after["uwsgi_worker_requests_total"]) == ["1", "2", "3", "4"]
    assert grown >= served
    assert all(v > 20 * 2**20 for v in after["uwsgi_worker_rss_bytes"].values()), "each worker holds the app"
    assert total(after, "uwsgi_worker_cores") == 4 * int(settings({})["SAHARA_API_THREADS"])
    # The master measures the queue once a second: 0 until its first check.
    wait_for(lambda: scrape(url)["uwsgi_socket_max_queue_length"][""] == 1024, 10, "listen = 1024 (deploy/uwsgi.ini)")
    for name in ("uwsgi_listen_queue_length", "uwsgi_listen_queue_errors", "uwsgi_worker_exceptions_total"):
        assert name in after
    assert 0 < max(after["uwsgi_worker_average_response_time_seconds"].values()) < 30, "uWSGI's avg_rt, in seconds"


def test_killed_worker_counts_a_respawn(launch) -> None:
    api = launch(SAHARA_API_WORKERS=4)
    url = metrics_url(api)
    before = wait_scrape(url)
    workers = api.worker_pids()
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    # Back = a new process that takes requests (a TERM before that leaves uWSGI's
    # stop waiting for it until worker-reload-mercy: seen without metrics too).
    while len(api.worker_pids() - {victim}) < len(workers) or total(after := scrape(url), "uwsgi_worker_accepting") < 4:
        assert time.monotonic() < deadline, "the worker came back"
        time.sleep(0.05)
    respawns = total(after, "uwsgi_worker_respawn_count_total") - total(before, "uwsgi_worker_respawn_count_total")
    print(f"\nkill -9 of one worker: uwsgi_worker_respawn_count_total grew by {respawns:.0f}")
    assert respawns == 1
    assert after["uwsgi_workers"][""] == 4 and after["uwsgi_up"][""] == 1


def test_harakiri_is_counted(launch, slow_engine, make_cluster, token) -> None:
    slow_engine(60)  # the engine never answers in time: uWSGI kills the request after 3 s
    api = launch(SAHARA_API_WORKERS=2, SAHARA_API_TIMEOUT=3, SAHARA_API_STOP_TIMEOUT=10)
    url = metrics_url(api)
    before = wait_scrape(url)
    try:  # the worker dies with the request: nginx answers 502 (direct: the connection drops)
        assert scale_request(api.url, token, make_cluster(), timeout=30).status_code == 502
    except requests.ConnectionError:
        assert api.environ.get("SAHARA_API_FRONT") == "direct"
    after = scrape(url)
    killed = total(after, "uwsgi_worker_harakiri_count_total") - total(before, "uwsgi_worker_harakiri_count_total")
    print(f"\none stuck request: uwsgi_worker_harakiri_count_total grew by {killed:.0f}")
    assert killed == 1


def test_busy_threads_while_slow_requests_run(launch, slow_engine, make_cluster, token) -> None:
    delay, slow = 4.0, 3
    slow_engine(delay)
    api = launch(SAHARA_API_WORKERS=2)
    url = metrics_url(api)
    cluster = make_cluster()
    warm(api.url, token)

    def cores_idle() -> bool:
        # A core is busy until its worker has closed the request, a moment after
        # the client has the answer from nginx (seen once at 1 under make test).
        return total(scrape(url), "uwsgi_worker_cores_busy") == 0

    wait_for(cores_idle, 5, "every core idle after the warm-up")
    idle = scrape(url)
    with ThreadPoolExecutor(slow) as pool:
        pending = [pool.submit(scale_request, api.url, token, cluster) for _ in range(slow)]
        time.sleep(delay / 2)
        during = scrape(url)
        assert all(f.result().status_code == 400 for f in pending)
    busy = total(during, "uwsgi_worker_cores_busy")
    print(f"\n{slow} slow requests: {busy:.0f} threads busy, {total(during, 'uwsgi_worker_busy'):.0f} workers busy")
    assert total(idle, "uwsgi_worker_cores_busy") == 0 and total(idle, "uwsgi_worker_idle") == 2
    assert busy == slow
    assert total(during, "uwsgi_worker_busy") >= 1
    wait_for(cores_idle, 5, "every core idle again")


def test_metrics_are_local_and_stop_with_the_api(launch) -> None:
    api = launch(SAHARA_API_WORKERS=2)
    wait_scrape(metrics_url(api))
    proc = exporter(api)
    listening = [c.laddr for c in proc.connections("inet") if c.status == psutil.CONN_LISTEN]
    print(f"\nexporter pid {proc.pid} listens on {listening}")
    assert [a.port for a in listening] == [int(api.environ["SAHARA_METRICS_PORT"])]
    assert all(a.ip == "127.0.0.1" for a in listening), "loopback only by default"
    run_dir = Path(api.environ["SAHARA_RUN_DIR"])
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700, "the stats socket's directory is the owner's only"
    assert api.stop() == 0
    assert not psutil.pid_exists(proc.pid) or proc.status() == psutil.STATUS_ZOMBIE, "no orphan exporter"
    with pytest.raises(requests.ConnectionError):
        scrape(metrics_url(api))


def test_exporter_dies_with_a_killed_master(launch) -> None:
    """SIGKILL gives the master no chance to stop it: the kernel does (PR_SET_PDEATHSIG)."""
    api = launch(SAHARA_API_WORKERS=2)
    wait_scrape(metrics_url(api))
    proc = exporter(api)
    assert_dies_with_killed_master(proc, api.master, "the exporter")


def test_port_zero_turns_metrics_off(launch) -> None:
    api = launch(SAHARA_API_WORKERS=2, SAHARA_METRICS_PORT=0, SAHARA_API_FRONT="direct")
    assert set(psutil.Process(api.master).children()) == {psutil.Process(p) for p in api.worker_pids()}
    assert "sahara_api_metrics" not in api.log_text()


def test_up_is_zero_without_the_stats_socket(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, str(ROOT / "sahara_api_metrics.py"), str(tmp_path / "absent.sock"), "127.0.0.1", str(port)]
    proc = start("exporter", argv, tmp_path / "exporter.log", dict(os.environ))
    try:
        samples = wait_scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        proc.stop()
    assert samples == {"uwsgi_up": {"": 0.0}}


def test_exporter_cost(launch, token) -> None:
    """The exporter's own memory, one scrape's time, and request latency with
    and without a scraper 150x more eager than Prometheus' usual 15 s."""
    api = launch(SAHARA_API_WORKERS=2)
    url = metrics_url(api)
    wait_scrape(url)
    for _ in range(20):
        fast_get(api.url, token)

    def latencies(seconds: float = 4) -> list[float]:
        deadline, out = time.monotonic() + seconds, []
        while time.monotonic() < deadline:
            out.append(fast_get(api.url, token).seconds)
        return out

    quiet = latencies()
    stop, scrapes = threading.Event(), []

    def scraper() -> None:
        while not stop.wait(0.1):
            t0 = time.monotonic()
            scrape(url)
            scrapes.append(time.monotonic() - t0)

    thread = threading.Thread(target=scraper)
    thread.start()
    try:
        scraped = latencies()
    finally:
        stop.set()
        thread.join()
    mem = exporter(api).memory_full_info()
    q50, s50 = statistics.median(quiet), statistics.median(scraped)
    print(
        f"\nexporter RSS {mem.rss / 2**20:.1f} MiB, PSS {mem.pss / 2**20:.1f} MiB, USS {mem.uss / 2**20:.1f} MiB; "
        f"scrape median {statistics.median(scrapes) * 1000:.1f} ms, max {max(scrapes) * 1000:.1f} ms "
        f"({len(scrapes)} scrapes); GET /v2/plugins median {q50 * 1000:.1f} ms ({len(quiet)} requests) quiet, "
        f"{s50 * 1000:.1f} ms ({len(scraped)} requests) while scraped every 0.1 s"
    )
    assert mem.rss < 80 * 2**20
    assert s50 < 2 * q50 + 0.05, "scrapes do not slow requests"
