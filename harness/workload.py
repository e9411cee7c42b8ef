"""The spec's workload, shared by test_slow_rpc.py and the benchmark:
scale requests whose validation makes a synchronous RPC to the engine
(slow_engine.py answers it after a delay, then the API answers 400), and
fast GETs sent meanwhile."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import requests

FAST_PATH = "/v2/plugins"


@dataclass
class Timed:
    seconds: float
    status: int  # 0: no HTTP answer (connection error or timeout)
    body: str = ""


@dataclass
class SlowMix:
    total: float  # first slow request sent -> last slow answer
    slow: list[Timed]
    fast: list[Timed]
    stalled: bool = False  # no answer at all for `stall` s: the requests still out are not waited for


def get(url: str, path: str, token: str = "", timeout: float = 30) -> requests.Response:
    """GET `path`, with `token` if any."""
    return requests.get(f"{url}{path}", headers={"X-Auth-Token": token} if token else {}, timeout=timeout)


def scale_request(url: str, token: str, cluster_id: str, timeout: float = 60) -> requests.Response:
    """PUT /v2/clusters/{id} with a resize: Sahara validates it with the sync engine RPC."""
    return requests.put(
        f"{url}/v2/clusters/{cluster_id}",
        json={"resize_node_groups": [{"name": "workers", "count": 2}]},
        headers={"X-Auth-Token": token},
        timeout=timeout,
    )


def scale(url: str, token: str, cluster_id: str, timeout: float = 60) -> Timed:
    t0 = time.monotonic()
    try:
        r = scale_request(url, token, cluster_id, timeout)
    except requests.RequestException:
        return Timed(time.monotonic() - t0, 0)
    return Timed(time.monotonic() - t0, r.status_code, r.text)


def fast_get(url: str, token: str, path: str = FAST_PATH, timeout: float = 60) -> Timed:
    t0 = time.monotonic()
    try:
        r = requests.get(f"{url}{path}", headers={"X-Auth-Token": token}, timeout=timeout)
    except requests.RequestException:
        return Timed(time.monotonic() - t0, 0)
    return Timed(time.monotonic() - t0, r.status_code)


def warm(url: str, token: str, count: int = 16, at_once: int = 16) -> None:
    """Warm every worker and thread: a worker's first request fetches
    keystonemiddleware's own token, slowly. `at_once` below the thread count
    keeps the warm-up itself out of the listen queue."""
    with ThreadPoolExecutor(at_once) as pool:
        list(pool.map(lambda _: fast_get(url, token), range(count)))


def fast_get_since(sent: float, url: str, token: str, timeout: float = 60) -> Timed:
    """A fast GET timed from when it was due: a wait for a free client thread counts too."""
    r = fast_get(url, token, timeout=timeout)
    return Timed(time.monotonic() - sent, r.status)


def slow_mix(
    url: str,
    token: str,
    cluster_id: str,
    slow: int,
    fast_interval: float = 0.1,
    limit: float = 60,
    stall: float | None = None,
    timeout: float = 60,
) -> SlowMix:
    """`slow` concurrent scale requests; a fast GET every `fast_interval` s until they are done.
    With `stall`, gives up when no request at all has been answered for that long (a wedged
    server): returns at once with stalled=True, leaving the requests still out to their
    timeouts (the caller kills the server, which ends them). Each request times out after `timeout` s."""
    pool = ThreadPoolExecutor(slow + 16)
    last = [time.monotonic()]

    def answered(_: Future) -> None:
        last[0] = time.monotonic()

    stalled = False
    try:
        t0 = time.monotonic()
        pending = [pool.submit(scale, url, token, cluster_id, timeout) for _ in range(slow)]
        for f in pending:
            f.add_done_callback(answered)
        time.sleep(0.2)  # the slow ones are in flight
        fast: list[Future] = []
        while not all(f.done() for f in pending) and time.monotonic() - t0 < limit:
            if stall is not None and time.monotonic() - last[0] > stall:
                stalled = True
                break
            fast.append(pool.submit(fast_get_since, time.monotonic(), url, token, timeout))
            fast[-1].add_done_callback(answered)
            time.sleep(fast_interval)
        if stalled:
            done = [f.result() for f in pending if f.done()]
            return SlowMix(time.monotonic() - t0, done, [f.result() for f in fast if f.done()], stalled=True)
        slow_results = [f.result() for f in pending]
        total = max(t0 + r.seconds for r in slow_results) - t0
        return SlowMix(total, slow_results, [f.result() for f in fast])
    finally:
        pool.shutdown(wait=not stalled, cancel_futures=stalled)
