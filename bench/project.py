"""The benchmark's footing, shared by `make bench`, `make hostile`, bench/ab.py
and bench/front_candidates.py: its log line, the local stack with a RabbitMQ
vhost of the run's own, and its Keystone project with a fixed number of clusters."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from bench.wedge import Wedged
from harness.make_cluster import make_clusters
from harness.procs import Api
from harness.stack import Stack, ensure_project, keystone_session, read_openrc

BENCH_PROJECT = "sahara-bench"  # its own Keystone project: a fixed number of clusters


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Project:
    """The benchmark's own Keystone project on the local stack: a token, and a fixed
    number of clusters (GET /v2/clusters lists them)."""

    def __init__(self, conf: Path, clusters: int) -> None:
        self.conf = conf
        openrc = read_openrc()
        self.project_id = ensure_project(openrc, BENCH_PROJECT, "make bench")
        self.token = keystone_session(openrc, BENCH_PROJECT).get_token()
        self.clusters = clusters
        say(f"stack: project {BENCH_PROJECT} with {clusters} clusters")
        self.ensure_clusters()

    def ensure_clusters(self) -> None:
        """Create clusters until the project has its number again (other test runs may wipe the table)."""
        self.cluster_id = make_clusters(self.conf, self.project_id, at_least=self.clusters)

    def count_clusters(self, api: Api, tries: int = 3) -> int:
        """Between wrk runs a loaded server may still be draining its backlog: retry,
        then call the contender wedged."""
        for attempt in range(tries):
            try:
                r = requests.get(f"{api.url}/v2/clusters", headers={"X-Auth-Token": self.token}, timeout=15)
                r.raise_for_status()
                return len(r.json()["clusters"])
            except requests.RequestException as e:
                say(f"stack: counting the clusters failed ({e.__class__.__name__}), retrying in 5 s")
                if attempt < tries - 1:
                    time.sleep(5)
        raise Wedged(f"GET /v2/clusters failed {tries} times in a row")


@contextlib.contextmanager
def on_the_stack(workdir: Path, clusters: int) -> Iterator[Project]:
    """The local stack up (down at the end stops only what this run started), a
    RabbitMQ vhost of this run's own (no sahara-engine of `make run` or of a test
    answers our RPCs), and the benchmark's project."""
    say("stack: scripts/stack.sh up (reuses running services)")
    stack = Stack("bench")
    with stack.running(quiet=True), stack.vhost("sahara-bench", workdir) as conf:
        yield Project(conf, clusters)
