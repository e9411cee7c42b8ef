"""Debug mode: the Sahara API in one process whose requests run in green
threads (eventlet, as sahara-engine uses), so a request waiting on the engine
blocks nobody and breakpoint() stops in this terminal. The launcher's debug
mode runs it under hupper (`hupper -m sahara_api_debug`), which restarts it
when a Python file it loaded changes; `make debug` starts it.
"""

from __future__ import annotations

import os
import sys


def serve_debug() -> None:
    """Serve sahara_wsgi_entry's app on SAHARA_API_HOST:SAHARA_API_PORT until TERM."""
    import eventlet

    eventlet.monkey_patch()
    import signal
    import socket

    import eventlet.wsgi
    import hupper

    from sahara_api_knobs import settings
    from sahara_wsgi_entry import _before_exit, build_application

    knobs = settings()
    app = build_application(debug=True)
    if hupper.is_active():
        # hupper's own module watcher is a thread started before monkey_patch
        # and stalls: name the files to watch (code outside the venv) here.
        loaded = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
        hupper.get_reloader().watch_files([f for f in loaded if f and not f.startswith((sys.prefix, sys.base_prefix))])
    host = knobs["SAHARA_API_HOST"]
    sock = eventlet.listen((host, int(knobs["SAHARA_API_PORT"])), socket.AF_INET6 if ":" in host else socket.AF_INET)
    pool = eventlet.GreenPool(1000)
    server = eventlet.spawn(eventlet.wsgi.server, sock, app, custom_pool=pool)
    stopping: list[int] = []
    # TERM: stop accepting, let in-flight requests finish (eventlet's default dies at once).
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    while not stopping:
        eventlet.sleep(0.1)
    server.kill()
    sock.close()
    with eventlet.Timeout(int(knobs["SAHARA_API_TIMEOUT"]), False):
        pool.waitall()
    _before_exit()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # hupper's pipe thread predates monkey_patch: skip thread teardown


if __name__ == "__main__":
    serve_debug()
