"""Prometheus metrics of the Sahara API's uWSGI workers (docs/metrics.md).

    python sahara_api_metrics.py STATS_SOCKET HOST PORT

uWSGI's master starts this process (deploy/uwsgi.ini, attach-daemon2) and
stops it with itself. Each scrape reads the master's stats socket (one JSON
document per connection) and turns it into metrics named as the Go
uwsgi_exporter names them, so its dashboards and alerts work unchanged;
prometheus_client serves them. uwsgi_up is 0 when the socket cannot be read.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

# uWSGI's per-worker counters, exported as <name>_total with a worker_id label.
# uWSGI keeps them per worker slot across respawns; a reload (HUP) resets them.
WORKER_COUNTERS = {
    "requests": ("uwsgi_worker_requests", "Requests served in this worker slot."),
    "exceptions": ("uwsgi_worker_exceptions", "Exceptions the app raised in this worker slot."),
    "harakiri_count": ("uwsgi_worker_harakiri_count", "Workers killed in this slot for a request over the timeout."),
    "respawn_count": ("uwsgi_worker_respawn_count", "Times this worker slot was (re)spawned."),
}
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# uwsgi.ini's reload-on-rss; the launcher hands every knob to uWSGI, and its
# daemons inherit them. Exported so an alert can compare the RSS with it.
MAX_RSS_MB = os.environ.get("SAHARA_API_MAX_RSS_MB", "")


def read_stats(path: str, timeout: float = 5) -> dict:
    """The JSON document uWSGI's stats server writes on each connection, then closes."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        return json.loads(s.makefile("rb").read())


def rss_bytes(pid: int) -> int:
    """The worker's resident set now (uWSGI's own figure is updated only after a request)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):  # the worker just died: no figure
        return 0


class UwsgiCollector:
    def __init__(self, stats_socket: str) -> None:
        self.stats_socket = stats_socket

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("uwsgi_up", "1 if the uWSGI stats socket answered this scrape, else 0.")
        try:
            stats = read_stats(self.stats_socket)
        except (OSError, ValueError) as e:
            print(f"sahara-api-metrics: cannot read {self.stats_socket}: {e}", file=sys.stderr)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from self.server_metrics(stats)
        yield from self.worker_metrics([w for w in stats["workers"] if w["id"] > 0])

    @staticmethod
    def server_metrics(stats: dict) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "uwsgi_listen_queue_length", "Connections waiting in the listen queue.", value=stats["listen_queue"]
        )
        yield GaugeMetricFamily(
            "uwsgi_listen_queue_errors",
            "Master checks that found the listen queue full (cumulative).",
            value=stats["listen_queue_errors"],
        )
        size = GaugeMetricFamily("uwsgi_socket_max_queue_length", "Size of the listen queue.", labels=["name"])
        for sock in stats["sockets"]:
            size.add_metric([sock["name"]], sock["max_queue"])
        yield size
        if MAX_RSS_MB.isdigit():
            yield GaugeMetricFamily(
                "sahara_api_worker_rss_limit_bytes",
                "SAHARA_API_MAX_RSS_MB: a worker above it is recycled after its request (reload-on-rss).",
                value=int(MAX_RSS_MB) * 2**20,
            )

    @staticmethod
    def worker_metrics(workers: list[dict]) -> Iterator[Metric]:
        yield GaugeMetricFamily("uwsgi_workers", "Worker processes.", value=len(workers))
        busy = GaugeMetricFamily(
            "uwsgi_worker_busy", "1 if the worker runs at least one request.", labels=["worker_id"]
        )
        idle = GaugeMetricFamily("uwsgi_worker_idle", "1 if the worker runs no request.", labels=["worker_id"])
        accepting = GaugeMetricFamily(
            "uwsgi_worker_accepting", "1 once the worker has started and takes requests.", labels=["worker_id"]
        )
        threads = GaugeMetricFamily("uwsgi_worker_cores", "Threads of the worker.", labels=["worker_id"])
        threads_busy = GaugeMetricFamily(
            "uwsgi_worker_cores_busy", "Threads of the worker running a request.", labels=["worker_id"]
        )
        rss = GaugeMetricFamily("uwsgi_worker_rss_bytes", "Resident memory of the worker.", labels=["worker_id"])
        avg_rt = GaugeMetricFamily(
            "uwsgi_worker_average_response_time_seconds",
            "Average time of the worker's recent requests (uWSGI's avg_rt).",
            labels=["worker_id"],
        )
        counters = {
            k: CounterMetricFamily(name, text, labels=["worker_id"]) for k, (name, text) in WORKER_COUNTERS.items()
        }
        for w in workers:
            wid = [str(w["id"])]
            in_request = sum(c["in_request"] for c in w["cores"])
            busy.add_metric(wid, int(in_request > 0))
            idle.add_metric(wid, int(in_request == 0 and w["status"] == "idle"))
            accepting.add_metric(wid, w["accepting"])
            threads.add_metric(wid, len(w["cores"]))
            threads_busy.add_metric(wid, in_request)
            rss.add_metric(wid, rss_bytes(w["pid"]))
            avg_rt.add_metric(wid, w["avg_rt"] / 1e6)
            for key, family in counters.items():
                family.add_metric(wid, w[key])
        yield from (busy, idle, accepting, threads, threads_busy, rss, avg_rt, *counters.values())


def main(argv: list[str]) -> None:
    stats_socket, host, port = argv
    registry = CollectorRegistry(auto_describe=False)
    registry.register(UwsgiCollector(stats_socket))
    start_http_server(int(port), host, registry=registry)
    print(f"sahara-api-metrics: serving http://{host}:{port}/metrics from {stats_socket}", file=sys.stderr)
    while True:  # the server runs in a thread; uWSGI stops us with SIGTERM (or SIGKILL if its master dies)
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1:])
