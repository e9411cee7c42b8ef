"""Write slots (sahara_api_slots.py): writes take turns, a write waiting on the
engine lets the next one run, reads never wait, and a held slot delays the
next write by WAIT_S at most. Threads and events only: no server needed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import sahara_api_slots
from sahara_api_slots import WriteSlots


def app_that(during: Callable[[], None]) -> Callable:
    def app(environ: dict, start_response: Callable) -> list[bytes]:
        during()
        start_response("200 OK", [])
        return [b""]

    return app


def call(app: Callable, method: str) -> None:
    app({"REQUEST_METHOD": method}, lambda *_: None)


def running_at_once(slots: WriteSlots, method: str, body: Callable[[], None], requests: int = 6) -> int:
    """The most requests inside the app at the same moment."""
    inside, most, lock = [0], [0], threading.Lock()

    def during() -> None:
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


def test_writes_take_turns() -> None:
    assert running_at_once(WriteSlots(1), "PUT", lambda: time.sleep(0.05)) == 1
    assert running_at_once(WriteSlots(2), "POST", lambda: time.sleep(0.05)) == 2


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_reads_never_wait_for_a_slot(method: str) -> None:
    slots = WriteSlots(1)
    slots._free.acquire()  # a write holds the only slot
    assert running_at_once(slots, method, lambda: time.sleep(0.05)) == 6


def test_a_write_waiting_on_the_engine_gives_its_slot_away() -> None:
    slots = WriteSlots(1)
    rpc = slots.wrap_wait(lambda: time.sleep(0.2))  # Sahara's RPCClient.call, as install() wraps it
    t0 = time.monotonic()
    # Six writes that each wait 0.2 s on the engine overlap their waits.
    running_at_once(slots, "PUT", rpc)
    assert time.monotonic() - t0 < 0.2 * 6 / 2


def test_a_held_slot_delays_the_next_write_by_wait_s_at_most(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sahara_api_slots, "WAIT_S", 0.1)
    slots = WriteSlots(1)
    slots._free.acquire()  # held by a write stuck elsewhere (not on the engine)
    t0 = time.monotonic()
    call(slots.wrap_app(app_that(lambda: None)), "DELETE")
    assert 0.1 <= time.monotonic() - t0 < 2
