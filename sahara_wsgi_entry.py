"""The Sahara API as a WSGI application for uWSGI (deploy/uwsgi.ini).

uWSGI imports this module once in its master, which builds the app through
Sahara's own setup code and forks the workers from it (copy-on-write); each
worker then opens its own DB and RPC connections (_after_fork). The launcher
(sahara_api_launcher.py) checks the environment and starts uWSGI. Run as
a script it serves the debug mode, or with `sahara-engine` runs the engine
(run_engine), both with Sahara's secrets marked as such (hide_secrets).

Environment (defaults in deploy/defaults.env):
  SAHARA_CONFIG_FILES  Sahara config files, ':'-separated
  SAHARA_API_WORKERS   worker processes; overrides [DEFAULT] api_workers
  SAHARA_API_THREADS   threads per worker
  SAHARA_API_HOST, SAHARA_API_PORT   where to serve HTTP
  SAHARA_API_DRAIN_FILE  while this file exists /healthcheck answers 503
  SAHARA_API_WRITE_SLOTS  writes on the CPU at once per worker (sahara_api_slots.py)
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
PASTE_CONFIG = HERE / "deploy" / "api-paste.ini"
DEFAULTS = HERE / "deploy" / "defaults.env"
EX_UNAVAILABLE, EX_CONFIG = 69, 78  # sysexits.h: a service is down / bad config


class StartupError(Exception):
    """One line saying what is wrong and how to fix it."""

    def __init__(self, message: str, code: int = EX_CONFIG) -> None:
        super().__init__(message)
        self.code = code


def settings(env: dict[str, str] | None = None) -> dict[str, str]:
    """deploy/defaults.env overlaid with the environment."""
    env = os.environ if env is None else env
    values = {}
    for line in DEFAULTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return {**values, **{k: v for k, v in env.items() if k in values or k == "SAHARA_API_WORKERS"}}


def config_files(knobs: dict[str, str]) -> list[str]:
    files = [f for f in knobs["SAHARA_CONFIG_FILES"].split(":") if f]
    for f in files:
        if not os.access(f, os.R_OK):
            raise StartupError(
                f"config file {f} is missing or unreadable: create it or point SAHARA_CONFIG_FILES at yours"
            )
    return files


def hide_secrets() -> None:
    """Sahara 19 does not mark [trustee] password secret, and fills it with the
    [keystone_authtoken] password: the config dump at start-up (debug) would
    print it. Mark it secret like every other password."""
    from sahara.utils.openstack import keystone

    for opt in keystone.trustee_opts:
        opt.secret = opt.secret or opt.name == "password"


def run_engine(argv: list[str]) -> None:
    """sahara-engine, as its console script runs it, after hide_secrets()."""
    sys.argv = [str(Path(sys.executable).parent / "sahara-engine"), *argv]
    from sahara.cli import sahara_engine  # eventlet-patches everything first

    hide_secrets()
    sys.exit(sahara_engine.main())


def build_application(debug: bool = False) -> Callable:
    """Sahara's own API setup (sahara.cli.sahara_api.setup_api) with our paste file."""
    import sahara.main as server
    from oslo_config import cfg
    from oslo_log import log
    from oslo_messaging._metrics import client as _  # noqa: F401 (registers [oslo_messaging_metrics])
    from oslo_middleware.healthcheck import opts as healthcheck_opts
    from oslo_service import _options as wsgi_options

    hide_secrets()
    knobs = settings()
    # Sahara parses its config from argv: hand it the files we were given.
    sys.argv = ["sahara-api"] + [a for f in config_files(knobs) for a in ("--config-file", f)]
    conf = cfg.CONF
    log.register_options(conf)
    conf.set_default("use_stderr", True)
    conf.set_default("debug", debug)
    conf.register_opts(wsgi_options.wsgi_opts)
    conf.set_default("api_paste_config", str(PASTE_CONFIG))
    conf.register_opts(healthcheck_opts.DISABLE_BY_FILE_OPTS, group="healthcheck")
    conf.set_default("disable_by_file_path", knobs["SAHARA_API_DRAIN_FILE"], group="healthcheck")
    # oslo.messaging's metrics thread outlives the last RPC call by this many
    # seconds (10 upstream), and a stopping worker waits for it.
    conf.set_default("metrics_thread_stop_timeout", 1, group="oslo_messaging_metrics")

    # A topdir without etc/sahara/sahara.conf, so Sahara adds no dev config of its own.
    server.setup_common(os.devnull, "API")
    app = server.make_app()
    server.setup_sahara_api("distributed")
    server.setup_auth_policy()
    return app


def warm_up() -> None:
    """Build in the master what every worker would otherwise build for itself on
    its first requests, so the workers share it (copy-on-write) instead of each
    holding its own copy: the ORM's mapper configuration, the DB driver and the
    token cache client modules, the policy rules. Nothing here opens a
    connection, a session or a thread."""
    import sqlalchemy.orm
    from sahara.api import acl

    # Imported on first use: by the DB's first connection, keystonemiddleware's
    # first cache lookup, the first image request.
    for module in (
        "pymysql.connections",
        "pymysql.cursors",
        "memcache",
        "oslo_cache._memcache_pool",
        "glanceclient.v2.client",
    ):
        importlib.import_module(module)
    sqlalchemy.orm.configure_mappers()
    acl.ENFORCER.load_rules()


def with_request_id_in_log(app: Callable) -> Callable:
    """Expose Sahara's x-openstack-request-id to uWSGI's request log (%(request_id))."""

    def logged(environ: dict, start_response: Callable) -> object:
        def capture(status: str, headers: list, exc_info: object = None) -> Callable:
            rid = next((v for k, v in headers if k.lower() == "x-openstack-request-id"), "-")
            uwsgi.set_logvar("request_id", rid)
            return start_response(status, headers, exc_info)

        return app(environ, capture)

    return logged


def _after_fork() -> None:
    """Give each worker its own DB pool and RPC transport, never the master's."""
    import sahara.main as server
    from sahara.db.sqlalchemy import api as db_api
    from sahara.utils import rpc

    # uwsgi.ini's SIGCHLD hook wakes the master; respawned workers inherit it: reset.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    db_api.get_engine().dispose(close=False)  # drop inherited pool, keep the master's sockets open
    rpc.MESSAGING_TRANSPORT = None
    rpc.setup("API")
    server.setup_sahara_api("distributed")  # RemoteOps bound to the new transport


def _before_exit() -> None:
    """Stop oslo.messaging's threads (reply poller, heartbeat): Python would
    otherwise wait for them, holding a stopping worker for ~10 s."""
    from sahara.utils import rpc

    for transport in {rpc.MESSAGING_TRANSPORT, rpc.NOTIFICATION_TRANSPORT} - {None}:
        transport.cleanup()


def serve_debug() -> None:
    """Debug mode: one process whose requests run in green threads (eventlet,
    as sahara-engine uses), so a request waiting on the engine blocks nobody
    and breakpoint() stops in this terminal. The launcher runs it under
    hupper, which restarts it when a Python file it loaded changes."""
    import eventlet

    eventlet.monkey_patch()
    import signal

    import eventlet.wsgi
    import hupper

    knobs = settings()
    app = build_application(debug=True)
    if hupper.is_active():
        # hupper's own module watcher is a thread started before monkey_patch
        # and stalls: name the files to watch (code outside the venv) here.
        loaded = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
        hupper.get_reloader().watch_files([f for f in loaded if f and not f.startswith((sys.prefix, sys.base_prefix))])
    sock = eventlet.listen((knobs["SAHARA_API_HOST"], int(knobs["SAHARA_API_PORT"])))
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


try:
    import uwsgi  # only importable inside uWSGI
except ImportError:
    uwsgi = None

if uwsgi is not None:
    try:
        application = build_application()
        warm_up()
        write_slots = int(settings()["SAHARA_API_WRITE_SLOTS"])
        if write_slots:
            import sahara_api_slots

            application = sahara_api_slots.install(application, write_slots)
        application = with_request_id_in_log(application)
    except Exception as e:
        # uWSGI prints the traceback; need-app then stops start-up.
        print(
            f"sahara-api: ERROR: the Sahara app failed to load ({type(e).__name__}: {e}): fix what the traceback shows",
            file=sys.stderr,
            flush=True,
        )
        raise
    # The workers fork from here. Frozen objects are never scanned by the
    # collector, whose passes would otherwise write to every page of them
    # and un-share what the master loaded (copy-on-write). No gc.collect()
    # first: it costs ~80 ms of start-up and saved no memory.
    gc.freeze()
    uwsgi.post_fork_hook = _after_fork
    uwsgi.atexit = _before_exit

if __name__ == "__main__":
    if sys.argv[1:2] == ["sahara-engine"]:  # the launcher's engine mode
        run_engine(sys.argv[2:])
    serve_debug()
