"""The Sahara API as a WSGI application for uWSGI (deploy/uwsgi.ini).

uWSGI imports this module once in its master, which builds the app through
Sahara's own setup code and forks the workers from it (copy-on-write); each
worker then opens its own DB and RPC connections (_after_fork). The launcher
(sahara_api_launcher.py) checks the knobs and starts uWSGI; the knobs come
from sahara_api_knobs.py. The debug server (sahara_api_debug.py) and the
engine runner (sahara_api_engine.py) build on this module.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys
from collections.abc import Callable

from sahara_api_knobs import HERE, config_files, settings

PASTE_CONFIG = HERE / "deploy" / "api-paste.ini"


def hide_secrets() -> None:
    """Sahara 19 does not mark [trustee] password secret, and fills it with the
    [keystone_authtoken] password: the config dump at start-up (debug) would
    print it. Mark it secret like every other password."""
    from sahara.utils.openstack import keystone

    for opt in keystone.trustee_opts:
        opt.secret = opt.secret or opt.name == "password"


def build_application(debug: bool = False) -> Callable:
    """Sahara's own API setup (sahara.cli.sahara_api.setup_api) with our paste file."""
    import sahara.main as server
    from oslo_config import cfg
    from oslo_db import options as db_options
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
    # oslo.messaging's metrics thread outlives an RPC call by this (10 s upstream); a stopping worker waits.
    conf.set_default("metrics_thread_stop_timeout", 1, group="oslo_messaging_metrics")
    # A DB ceiling of 5 + 5 per worker, not 5 + 50: with one CPU slot a worker used 2 under 256 requests (capacity.md).
    db_options.set_defaults(conf, max_overflow=5)
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
    for module in ("pymysql.connections", "pymysql.cursors", "memcache", "oslo_cache._memcache_pool"):
        importlib.import_module(module)
    importlib.import_module("glanceclient.v2.client")
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

    # Until uWSGI sets its handlers after this hook, a worker has SIGHUP ignored
    # (uWSGI's main()) and SIGINT as Python's KeyboardInterrupt: a stop's HUP or
    # INT then was lost and the master waited for the worker (for ever, in a
    # graceful stop). Now either ends the worker, which has served nothing yet.
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
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


try:
    import uwsgi  # only importable inside uWSGI
except ImportError:
    uwsgi = None

if uwsgi is not None:
    try:
        application = build_application()
        warm_up()
        cpu_slots = int(settings()["SAHARA_API_CPU_SLOTS"])
        if cpu_slots:
            import sahara_api_slots

            application = sahara_api_slots.install(application, cpu_slots)
        application = with_request_id_in_log(application)
    except Exception as e:  # uWSGI prints the traceback; need-app then stops start-up.
        error = f"the Sahara app failed to load ({type(e).__name__}: {e}): fix what the traceback shows"
        print(f"sahara-api: ERROR: {error}", file=sys.stderr, flush=True)
        raise
    # The workers fork from here. Frozen objects are never scanned by the
    # collector, whose passes would otherwise write to every page of them
    # and un-share what the master loaded (copy-on-write). No gc.collect()
    # first: it costs ~80 ms of start-up and saved no memory.
    gc.freeze()
    uwsgi.post_fork_hook = _after_fork
    uwsgi.atexit = _before_exit
