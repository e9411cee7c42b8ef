"""The Sahara API as a WSGI application for uWSGI (deploy/uwsgi.ini).

uWSGI imports this module once in its master, which builds the app through
Sahara's own setup code and forks the workers from it (copy-on-write); each
worker then opens its own DB and RPC connections (_after_fork). The launcher
(sahara_api_launcher.py) checks the environment and starts uWSGI.

Environment (defaults in deploy/defaults.env):
  SAHARA_CONFIG_FILES  Sahara config files, ':'-separated
  SAHARA_API_WORKERS   worker processes; overrides [DEFAULT] api_workers
  SAHARA_API_THREADS   threads per worker
  SAHARA_API_HOST, SAHARA_API_PORT   where to serve HTTP
  SAHARA_API_DRAIN_FILE  while this file exists /healthcheck answers 503
"""

from __future__ import annotations

import gc
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


def build_application() -> Callable:
    """Sahara's own API setup (sahara.cli.sahara_api.setup_api) with our paste file."""
    import sahara.main as server
    from oslo_config import cfg
    from oslo_log import log
    from oslo_middleware.healthcheck import opts as healthcheck_opts
    from oslo_service import _options as wsgi_options

    knobs = settings()
    # Sahara parses its config from argv: hand it the files we were given.
    sys.argv = ["sahara-api"] + [a for f in config_files(knobs) for a in ("--config-file", f)]
    conf = cfg.CONF
    log.register_options(conf)
    conf.set_default("use_stderr", True)
    conf.register_opts(wsgi_options.wsgi_opts)
    conf.set_default("api_paste_config", str(PASTE_CONFIG))
    conf.register_opts(healthcheck_opts.DISABLE_BY_FILE_OPTS, group="healthcheck")
    conf.set_default("disable_by_file_path", knobs["SAHARA_API_DRAIN_FILE"], group="healthcheck")

    # A topdir without etc/sahara/sahara.conf, so Sahara adds no dev config of its own.
    server.setup_common(os.devnull, "API")
    app = server.make_app()
    server.setup_sahara_api("distributed")
    server.setup_auth_policy()
    return app


def _after_fork() -> None:
    """Give each worker its own DB pool and RPC transport, never the master's."""
    import sahara.main as server
    from sahara.db.sqlalchemy import api as db_api
    from sahara.utils import rpc

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the master's wake-up call (below) is not the workers' business
    db_api.get_engine().dispose(close=False)  # drop inherited pool, keep the master's sockets open
    rpc.MESSAGING_TRANSPORT = None
    rpc.setup("API")
    server.setup_sahara_api("distributed")  # RemoteOps bound to the new transport


try:
    import uwsgi  # only importable inside uWSGI
except ImportError:
    uwsgi = None

if uwsgi is not None:
    application = build_application()
    # The workers fork from here. Frozen objects are never scanned by the
    # collector, whose passes would otherwise write to every page of them
    # and un-share what the master loaded (copy-on-write). No gc.collect()
    # first: it costs ~80 ms of start-up and saved no memory.
    gc.freeze()
    uwsgi.post_fork_hook = _after_fork
    # uWSGI 2.0's master leaves SIGCHLD at SIG_DFL and finds dead workers only
    # when its event loop wakes up, at the latest after its 1 s check interval:
    # a killed worker was replaced after ~0.5 s on average. Any handler makes
    # SIGCHLD interrupt that wait (EINTR), so the master reaps and respawns at
    # once. The Python handler itself never needs to run.
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
