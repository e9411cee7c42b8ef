"""Run the Sahara API under uWSGI: the WSGI `application` and its launcher.

``python sahara_wsgi_entry.py [api|engine|db-sync]`` (the launcher) reads
the knobs, checks that the config, database, broker and port are usable,
then execs uWSGI with deploy/uwsgi.ini (or sahara-engine, sahara-db-manage). uWSGI imports this module once in its master, which builds
the app through Sahara's own setup code and forks the workers from it; each
worker then opens its own DB and RPC connections (see _after_fork).

Environment (defaults in deploy/defaults.env):
  SAHARA_CONFIG_FILES  Sahara config files, ':'-separated
  SAHARA_API_WORKERS   worker processes; overrides [DEFAULT] api_workers
  SAHARA_API_THREADS   threads per worker
  SAHARA_API_HOST, SAHARA_API_PORT   where to serve HTTP
  SAHARA_API_DRAIN_FILE  while this file exists /healthcheck answers 503
"""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PASTE_CONFIG = HERE / "deploy" / "api-paste.ini"
UWSGI_INI = HERE / "deploy" / "uwsgi.ini"
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
            raise StartupError(f"config file {f} is missing or unreadable: create it or point SAHARA_CONFIG_FILES at yours")
    return files


def load_conf(files: list[str]):
    """The few options the launcher needs, parsed from Sahara's own files."""
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    conf.register_opts([cfg.IntOpt("api_workers"), cfg.StrOpt("transport_url")])
    conf.register_opt(cfg.StrOpt("connection"), group="database")
    conf(args=[], project="sahara", default_config_files=files)
    return conf


def default_workers() -> int:
    """One process per CPU (the API is CPU-bound; threads cover the waiting), 2..8."""
    return max(2, min(len(os.sched_getaffinity(0)), 8))


def resolve_workers(knobs: dict[str, str], conf) -> int:
    raw = knobs.get("SAHARA_API_WORKERS")
    where = "SAHARA_API_WORKERS"
    if raw is None:
        where = "[DEFAULT] api_workers"
        try:
            value = conf.api_workers
        except ValueError as e:  # oslo's ConfigFileValueError
            raise StartupError(f"{where} is not an integer ({e}): set a whole number >= 1") from None
        if value is None:
            return default_workers()
        raw = str(value)
    try:
        workers = int(raw)
    except ValueError:
        raise StartupError(f"{where}={raw!r} is not an integer: set a whole number >= 1") from None
    if workers < 0:
        raise StartupError(f"{where}={workers} is negative: set a whole number >= 1")
    if workers == 0:
        raise StartupError(f"{where}=0 means one process with green threads: run `make debug` for that")
    return workers


def check_port(host: str, port: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as e:
            raise StartupError(f"cannot listen on {host}:{port} ({e.strerror}): stop what uses it or set SAHARA_API_PORT", EX_UNAVAILABLE) from None


def check_database(url: str | None) -> None:
    import sqlalchemy

    if not url:
        raise StartupError("[database] connection is not set: add it to your sahara.conf")
    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
        with engine.connect():
            pass
    except Exception as e:
        reason = str(getattr(e, "orig", None) or e).splitlines()[0]
        raise StartupError(f"cannot connect to the database {sqlalchemy.engine.make_url(url)!r} ({reason}): fix [database] connection or start the database", EX_UNAVAILABLE) from None


def check_broker(url: str | None) -> None:
    import kombu
    import oslo_messaging
    from oslo_config import cfg

    if not url:
        raise StartupError("[DEFAULT] transport_url is not set: add it to your sahara.conf")
    for host in oslo_messaging.TransportURL.parse(cfg.ConfigOpts(), url).hosts:
        where = f"{host.hostname}:{host.port or 5672}"
        try:
            with kombu.Connection(hostname=host.hostname, port=host.port or 5672, userid=host.username,
                                  password=host.password, connect_timeout=5) as c:
                c.ensure_connection(max_retries=1)
        except Exception as e:
            raise StartupError(f"cannot reach the message broker at {where} ({e}): start RabbitMQ or fix [DEFAULT] transport_url", EX_UNAVAILABLE) from None


def command(mode: str, knobs: dict[str, str], files: list[str]) -> list[str]:
    """What the launcher execs for each mode."""
    bindir = Path(sys.executable).parent
    config_args = [a for f in files for a in ("--config-file", f)]
    if mode == "api":
        return [str(bindir / "uwsgi"), "--ini", str(UWSGI_INI)]
    if mode == "engine":
        return [str(bindir / "sahara-engine"), *config_args]
    if mode == "db-sync":
        return [str(bindir / "sahara-db-manage"), *config_args, "upgrade", "head"]
    raise StartupError(f"unknown mode {mode!r}: use one of api, engine, db-sync")


def main(argv: list[str]) -> None:
    """sahara_wsgi_entry.py [api|engine|db-sync]: check, then exec the service."""
    mode = argv[0] if argv else "api"
    try:
        knobs = settings()
        files = config_files(knobs)
        conf = load_conf(files)
        cmd = command(mode, knobs, files)
        if mode == "api":
            knobs["SAHARA_API_WORKERS"] = str(resolve_workers(knobs, conf))
            check_port(knobs["SAHARA_API_HOST"], knobs["SAHARA_API_PORT"])
        check_database(conf.database.connection)
        if mode != "db-sync":
            check_broker(conf.transport_url)
    except StartupError as e:
        print(f"sahara-api: ERROR: {e}", file=sys.stderr)
        sys.exit(e.code)
    sys.stdout.flush()
    os.execve(cmd[0], cmd, {**os.environ, **knobs, "VIRTUAL_ENV": sys.prefix})


def build_application():
    """Sahara's own API setup (sahara.cli.sahara_api.setup_api) with our paste file."""
    from oslo_config import cfg
    from oslo_log import log
    from oslo_middleware.healthcheck import opts as healthcheck_opts
    from oslo_service import _options as wsgi_options

    import sahara.main as server

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
    uwsgi.post_fork_hook = _after_fork

if __name__ == "__main__":
    main(sys.argv[1:])
