"""CPU slots: per worker, at most N requests running Python at once.

CPython runs one thread of a process at a time (the GIL) and hands it
round-robin to every runnable thread. With dozens of requests in flight in
one worker, each of their I/O calls (memcached, the DB) sends a request to
the back of that queue, and the switches themselves cost CPU: measured on
2 x 64 threads, 5-44 % more CPU per request at 4-64 concurrent requests
than with this slot, and a burst of slow writes made a 3 ms GET wait
0.4-1.3 s without any slot (docs/tuning.md).

With one slot (the default) a worker runs one request's Python at a time,
as Sahara's own launcher does, but a request gives its slot back while it
waits on another service: the engine (Sahara's synchronous RPC), Keystone,
Nova, Neutron, Glance, Heat, Swift (keystoneauth, requests). Short waits on
the DB and the token cache keep the slot, as they would in upstream's one
process. Requests waiting for a slot queue in order, reads (GET, HEAD,
OPTIONS) ahead of writes, so a burst of writes cannot hold reads back.

A slot is never waited for more than WAIT_S: a request held up longer
(a slot holder stuck in a wait not listed here) runs anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

READS = frozenset({"GET", "HEAD", "OPTIONS"})
WAIT_S = 5.0  # longest a request queues for a slot before it runs regardless


class CpuSlots:
    def __init__(self, slots: int) -> None:
        self._lock = threading.Lock()
        self._reads = threading.Condition(self._lock)
        self._writes = threading.Condition(self._lock)
        self._free = slots
        self._waiting_reads = 0
        self._held = threading.local()

    def _take(self, read: bool) -> None:
        with self._lock:
            if read:
                self._waiting_reads += 1
                got = self._reads.wait_for(lambda: self._free > 0, WAIT_S)
                self._waiting_reads -= 1
            else:
                got = self._writes.wait_for(lambda: self._free > 0 and not self._waiting_reads, WAIT_S)
            if got:
                self._free -= 1
        self._held.value = got

    def _give(self) -> bool:
        held = getattr(self._held, "value", False)
        if held:
            self._held.value = False
            with self._lock:
                self._free += 1
                (self._reads if self._waiting_reads else self._writes).notify()
        return held

    def wrap_app(self, app: Callable) -> Callable:
        def gated(environ: dict, start_response: Callable) -> Iterable[bytes]:
            self._take(environ.get("REQUEST_METHOD") in READS)
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
                    self._take(read=True)  # back to work already begun: ahead of new writes

        return released


def install(app: Callable, slots: int) -> Callable:
    """The app with CPU slots, given back around every wait on another service."""
    import keystoneauth1.identity.base
    import keystoneauth1.session
    import requests.adapters
    from sahara.utils import rpc

    gate = CpuSlots(slots)
    rpc.RPCClient.call = gate.wrap_wait(rpc.RPCClient.call)
    # Every OpenStack API call, keystonemiddleware's token checks included.
    keystoneauth1.session.Session.request = gate.wrap_wait(keystoneauth1.session.Session.request)
    # Takes a lock of its own and may fetch a token inside it: give the slot
    # back first, or a holder waiting for that lock would block its fetcher.
    base = keystoneauth1.identity.base.BaseIdentityPlugin
    base.get_access = gate.wrap_wait(base.get_access)
    # HTTP clients outside keystoneauth (swiftclient).
    requests.adapters.HTTPAdapter.send = gate.wrap_wait(requests.adapters.HTTPAdapter.send)
    return gate.wrap_app(app)
