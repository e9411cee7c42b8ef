"""Where the CPU of one request goes, without any HTTP server: the app that
sahara_wsgi_entry builds, called in-process under cProfile.

    python -m bench.profile_app RUNS TOKEN PATH... -> one JSON line
                                                    (PATH -> profile, and "db_pool")

The config comes from the environment like the server's (SAHARA_CONFIG_FILES).
Own CPU time of every function is summed per top-level package, so the
shares add up to the whole request; "gc" is the collector's time (gc.callbacks).
"""

from __future__ import annotations

import cProfile
import gc
import io
import json
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable

WARMUP = 20
GROUPS = {
    "sqlalchemy": "SQLAlchemy ORM/core",
    "pymysql": "PyMySQL (pure-Python MariaDB driver)",
    "sahara": "Sahara",
    "keystonemiddleware": "keystonemiddleware",
    "memcache": "python-memcached (token cache)",
    "flask": "Flask/Werkzeug",
    "werkzeug": "Flask/Werkzeug",
    "webob": "WebOb/Paste (paste pipeline)",
    "paste": "WebOb/Paste (paste pipeline)",
    "oslo_middleware": "oslo.middleware",
    "oslo_policy": "oslo.policy",
    "oslo_db": "oslo.db",
    "oslo_context": "oslo.context",
    "oslo_log": "logging",
    "logging": "logging",
    "json": "json",
    "jsonschema": "jsonschema",
    "socket": "socket calls (DB, memcached)",
}


def group(filename: str, name: str) -> str:
    if filename == "~":  # a builtin
        if "socket" in name or "recv" in name or "send" in name:
            return GROUPS["socket"]
        return "builtins"
    parts = filename.replace("\\", "/").split("/")
    if "site-packages" in parts:
        top = parts[parts.index("site-packages") + 1].removesuffix(".py")
        return GROUPS.get(top, "other libraries")
    top = parts[-2] if len(parts) > 1 else ""
    return GROUPS.get(parts[-1].removesuffix(".py"), GROUPS.get(top, "Python stdlib"))


def caller(app: Callable, token: str, path: str) -> Callable[[], None]:
    def call() -> None:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8386",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_X_AUTH_TOKEN": token,
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        status = []
        b"".join(app(environ, lambda s, h, exc_info=None: status.append(s)))
        if not status[0].startswith("200"):
            raise RuntimeError(f"GET {path}: {status[0]}")

    return call


def profile(call: Callable[[], None], runs: int) -> dict:
    for _ in range(WARMUP):
        call()
    gc_time = [0.0, 0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_time[1] = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - gc_time[1]

    t0 = time.process_time()
    for _ in range(runs):
        call()
    cpu = (time.process_time() - t0) / runs
    gc.callbacks.append(on_gc)
    prof = cProfile.Profile(time.process_time)  # CPU, not time spent waiting on sockets
    prof.enable()
    for _ in range(runs):
        call()
    prof.disable()
    gc.callbacks.remove(on_gc)
    shares: dict[str, float] = defaultdict(float)
    for (filename, _, name), (_, _, tottime, _, _) in pstats.Stats(prof).stats.items():
        shares[group(filename, name)] += tottime
    total = sum(shares.values())
    return {
        "cpu_ms_per_req": round(1000 * cpu, 2),
        "gc_ms_per_req": round(1000 * gc_time[0] / runs, 3),
        "shares": {k: round(v / total, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
    }


def main() -> None:
    runs, token, paths = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    sys.argv = sys.argv[:1]
    import sahara_wsgi_entry

    app = sahara_wsgi_entry.build_application()
    gc.freeze()  # as in the uWSGI master
    out: dict = {path: profile(caller(app, token, path), runs) for path in paths}
    out["db_pool"] = db_pool()
    print(json.dumps(out))


def db_pool() -> dict:
    """The most DB connections one API process may open: its SQLAlchemy pool as
    the app configured it ([database] max_pool_size + max_overflow, or whatever
    the entry sets), and what sahara.conf's [database] says (the engine's, unless
    the engine runner sets its own). None: no limit."""
    from oslo_config import cfg
    from sahara.db.sqlalchemy import api as db_api

    pool = db_api.get_engine().pool
    size = pool.size() if hasattr(pool, "size") else None
    overflow = getattr(pool, "_max_overflow", None)
    db = cfg.CONF.database
    conf_ceiling = None if not db.max_pool_size or db.max_overflow < 0 else db.max_pool_size + db.max_overflow
    return {
        "pool": type(pool).__name__,
        "pool_size": size,
        "max_overflow": overflow,
        "api_ceiling": None if size is None or overflow is None or overflow < 0 else size + overflow,
        "conf_max_pool_size": db.max_pool_size,
        "conf_max_overflow": db.max_overflow,
        "conf_ceiling": conf_ceiling,
    }


if __name__ == "__main__":
    main()
