"""Write slots: per worker, at most N write requests on the CPU at once.

A burst of cluster scale requests (PUTs whose validation waits ~seconds on
the engine's synchronous RPC) puts dozens of threads of one worker on the
CPU at the same time, before and after that wait. CPython's GIL hands the
interpreter round-robin to every runnable thread, so a 3 ms GET then waits
behind all of them at each of its I/O calls: measured p99 0.4-1.3 s with 64
such PUTs on 2 workers x 64 threads (docs/tuning.md). With the slots, writes
(any method but GET, HEAD, OPTIONS) take turns on the CPU, a write gives its
slot back while it waits on the engine (Sahara's RPCClient.call), and reads
never take one: they compete with at most N writes. The CPU work is the
same, so the writes finish as fast; the reads stop waiting behind them.

A write that waits on something else (Keystone, Nova...) keeps its slot:
the next write waits at most WAIT_S for it, then runs anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

READS = frozenset({"GET", "HEAD", "OPTIONS"})
WAIT_S = 5.0  # longest a write queues for a slot before it runs regardless


class WriteSlots:
    def __init__(self, slots: int) -> None:
        self._free = threading.Semaphore(slots)
        self._held = threading.local()

    def _take(self) -> None:
        self._held.value = self._free.acquire(timeout=WAIT_S)

    def _give(self) -> bool:
        held = getattr(self._held, "value", False)
        if held:
            self._held.value = False
            self._free.release()
        return held

    def wrap_app(self, app: Callable) -> Callable:
        def gated(environ: dict, start_response: Callable) -> Iterable[bytes]:
            if environ.get("REQUEST_METHOD") in READS:
                return app(environ, start_response)
            self._take()
            try:
                return app(environ, start_response)
            finally:
                self._give()

        return gated

    def wrap_wait(self, call: Callable) -> Callable:
        """`call` blocks without using the CPU: its caller's slot is free meanwhile."""

        def released(*args: Any, **kwargs: Any) -> Any:
            held = self._give()
            try:
                return call(*args, **kwargs)
            finally:
                if held:
                    self._take()

        return released


def install(app: Callable, slots: int) -> Callable:
    """The app with write slots; Sahara's synchronous RPC releases them."""
    from sahara.utils import rpc

    gate = WriteSlots(slots)
    rpc.RPCClient.call = gate.wrap_wait(rpc.RPCClient.call)
    return gate.wrap_app(app)
