"""A server that wedges the way upstream `sahara-api` did in a C1 burst: the
first request blocks its only thread in a lock nobody releases, later ones
wait in the listen queue, and it ignores SIGTERM. It also leaves a child in
a session of its own (as uWSGI's nginx daemon does). For test_bench_wedge.py.

    python -m harness.wedged_server PORT
"""

from __future__ import annotations

import http.server
import signal
import subprocess
import sys
import threading

LOCK = threading.Lock()


def authenticate() -> None:
    """Where the thread stays: like keystoneauth1's `with self._lock`, held by nobody alive."""
    with LOCK:
        pass


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        LOCK.acquire()
        authenticate()

    do_PUT = do_GET  # noqa: N815


def main() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("wedged server ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
