"""CPU slots (sahara_api_slots.py): requests take turns on the CPU, a request
waiting on another service lets the next one run, reads queue ahead of
writes, and a held slot delays a request by WAIT_S at most. Threads and
events only: no server needed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import sahara_api_slots
from sahara_api_slots import CpuSlots


def app_that(during: Callable[[dict], None]) -> Callable:
    def app(environ: dict, start_response: Callable) -> list[bytes]:
        during(environ)
        start_response("200 OK", [])
        return [b""]

    return app


def call(app: Callable, method: str, name: str = "") -> None:
    app({"REQUEST_METHOD": method, "name": name}, lambda *_: None)


def running_at_once(slots: CpuSlots, method: str, body: Callable[[], None], requests: int = 6) -> int:
    """The most requests inside the app at the same moment."""
    inside, most, lock = [0], [0], threading.Lock()

    def during(environ: dict) -> None:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        body()
        with lock:
            inside[0] -= 1

    app = slots.wrap_app(app_that(during))
    threads = [threading.Thread(target=call, args=(app, method)) for _ in range(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return most[0]


@pytest.mark.parametrize("method", ["GET", "PUT", "POST", "HEAD"])
def test_requests_take_turns(method: str) -> None:
    assert running_at_once(CpuSlots(1), method, lambda: time.sleep(0.05)) == 1
    assert running_at_once(CpuSlots(2), method, lambda: time.sleep(0.05)) == 2


def test_a_wait_on_another_service_gives_the_slot_back() -> None:
    slots = CpuSlots(1)
    waited = slots.wrap_wait(lambda: time.sleep(0.3))
    t0 = time.monotonic()
    assert running_at_once(slots, "PUT", waited, requests=8) == 8
    assert time.monotonic() - t0 < 2.0  # 8 x 0.3 s one after another would be 2.4 s


def test_reads_queue_ahead_of_writes() -> None:
    slots = CpuSlots(1)
    order: list[str] = []
    app = slots.wrap_app(app_that(lambda environ: order.append(environ["name"])))
    slots._take(read=False)  # a request holds the only slot
    slots._held.value = False  # ...in another thread, as far as this one knows
    threads = [threading.Thread(target=call, args=(app, "PUT", "write"))]
    threads[0].start()
    time.sleep(0.1)  # the write queues first
    threads.append(threading.Thread(target=call, args=(app, "GET", "read")))
    threads[1].start()
    time.sleep(0.1)
    slots._held.value = True
    slots._give()
    for t in threads:
        t.join(10)
    assert order == ["read", "write"]


def test_a_held_slot_delays_a_request_by_wait_s_at_most(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sahara_api_slots, "WAIT_S", 0.1)
    slots = CpuSlots(1)
    slots._take(read=True)
    slots._held.value = False  # held by a stuck request elsewhere
    t0 = time.monotonic()
    call(slots.wrap_app(app_that(lambda environ: None)), "GET")
    assert time.monotonic() - t0 < 3
