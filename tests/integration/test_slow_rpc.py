"""The spec's problem: a scale request waits on a synchronous RPC to the
engine (RemoteOps.get_engine_type_and_version). With one request at a time
(1 worker, 1 thread, as the old single-threaded API) it blocks everyone;
with our workers and threads, or debug mode's green threads, it blocks nobody.

The engine side is slow_engine.py (real oslo.messaging server, real broker);
the API code path is Sahara's own. Bounds are generous: the serialised case
takes ~4 delays, the concurrent one ~1.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from slow_engine import ENGINE_ANSWER

DELAY = 2.0
SLOW = 4  # concurrent scale requests


def scale(url: str, token: str, cluster_id: str) -> tuple[float, requests.Response]:
    t0 = time.monotonic()
    r = requests.put(
        f"{url}/v2/clusters/{cluster_id}",
        json={"resize_node_groups": [{"name": "workers", "count": 2}]},
        headers={"X-Auth-Token": token},
        timeout=60,
    )
    return time.monotonic() - t0, r


def fast_get(url: str, token: str) -> float:
    t0 = time.monotonic()
    r = requests.get(f"{url}/v2/plugins", headers={"X-Auth-Token": token}, timeout=60)
    assert r.status_code == 200
    return time.monotonic() - t0


def run_scenario(url: str, token: str, cluster_id: str) -> tuple[float, list[float], list[float]]:
    """SLOW concurrent scale requests; fast GETs every 0.1 s meanwhile."""
    with ThreadPoolExecutor(SLOW + 8) as pool:
        # Warm every worker/thread first: its first request fetches keystonemiddleware's own token.
        list(pool.map(lambda _: fast_get(url, token), range(16)))
        t0 = time.monotonic()
        slow = [pool.submit(scale, url, token, cluster_id) for _ in range(SLOW)]
        time.sleep(0.2)  # the slow ones are in flight
        fast = []
        while not all(f.done() for f in slow) and time.monotonic() - t0 < 60:
            fast.append(pool.submit(fast_get, url, token))
            time.sleep(0.1)
        results = [f.result() for f in slow]
        total = time.monotonic() - t0
        fast_latencies = [f.result() for f in fast]
    for _, r in results:
        # 400 right after the round trip: the engine's answer is in the message.
        assert r.status_code == 400 and ENGINE_ANSWER in r.text, r.text
    return total, sorted(d for d, _ in results), fast_latencies


@pytest.mark.parametrize(
    ("server", "slow_concurrent", "fast_unblocked"),
    [
        pytest.param({"SAHARA_API_WORKERS": 1, "SAHARA_API_THREADS": 1}, False, False, id="one-at-a-time"),
        pytest.param({"SAHARA_API_WORKERS": 4, "SAHARA_API_THREADS": 1}, True, False, id="4-workers-no-threads"),
        pytest.param({"SAHARA_API_WORKERS": 4, "SAHARA_API_THREADS": 8}, True, True, id="4-workers-8-threads"),
        pytest.param({"mode": "debug"}, True, True, id="debug-green-threads"),
    ],
)
def test_slow_engine_rpc(launch, slow_engine, make_cluster, token, server, slow_concurrent, fast_unblocked) -> None:
    slow_engine(DELAY)
    api = launch(**server)
    total, slow, fast = run_scenario(api.url, token, make_cluster())
    print(
        f"{server}: {SLOW} slow requests done in {total:.2f} s "
        f"(each {', '.join(f'{d:.2f}' for d in slow)} s); {len(fast)} fast GETs meanwhile, "
        f"max {max(fast) * 1000:.0f} ms"
    )
    if slow_concurrent:
        assert total < 1.9 * DELAY, "slow requests did not run concurrently"
    else:
        assert total > 3 * DELAY, "slow requests were expected to queue"
    if fast_unblocked:
        assert max(fast) < DELAY / 2, "a fast GET waited behind a slow request"
    else:
        assert max(fast) > DELAY / 2, "fast GETs were expected to wait for a free worker"
