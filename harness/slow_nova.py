"""A Nova that answers its flavor list after a delay, for the tests of waits
on other services: Sahara's node group template validation lists Nova's
flavors (sahara/service/validations/base.py, check_flavor_exists) while the
request holds its worker's CPU slot, unless the slot is given back around
keystoneauth's calls (sahara_api_slots.py). There is no Nova on this
machine: this stands in for it on loopback, registered in Keystone's
catalog (compute, every interface) only while it runs, and it counts how
many requests it held at once."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from keystoneauth1 import session as ks_session

FLAVOR = "42"


class SlowNova(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, delay: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight = self.most_at_once = self.served = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v2.1"


class _Handler(BaseHTTPRequestHandler):
    server: SlowNova

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if not self.path.split("?")[0].endswith(("/flavors", "/flavors/detail")):
            self.send_error(404)
            return
        nova = self.server
        with nova.lock:
            nova.in_flight += 1
            nova.most_at_once = max(nova.most_at_once, nova.in_flight)
        time.sleep(nova.delay)
        with nova.lock:
            nova.in_flight -= 1
            nova.served += 1
        body = json.dumps({"flavors": [{"id": FLAVOR, "name": "slow", "links": []}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def slow_nova(admin: ks_session.Session, auth_url: str, delay: float) -> Iterator[SlowNova]:
    """The slow Nova, serving and in the catalog (RegionOne), until the block ends."""
    base = auth_url.rstrip("/")
    nova = SlowNova(delay)
    threading.Thread(target=nova.serve_forever, daemon=True).start()
    service = admin.post(f"{base}/services", json={"service": {"type": "compute", "name": "slow-nova"}})
    service_id = service.json()["service"]["id"]
    try:
        for interface in ("public", "internal", "admin"):
            endpoint = {"service_id": service_id, "interface": interface, "url": nova.url, "region_id": "RegionOne"}
            admin.post(f"{base}/endpoints", json={"endpoint": endpoint})
        yield nova
    finally:
        admin.delete(f"{base}/services/{service_id}")  # its endpoints go with it
        nova.shutdown()
        nova.server_close()
