"""Start a Sahara service after checking that it can work.

    python sahara_api_launcher.py [MODE]   (MODES below; `modes` lists them)

Takes the knobs from sahara_api_knobs.py (the environment over
deploy/defaults.env) and checks them, the config files, the port, the
database and the message broker; on any
problem prints one line saying what is wrong and how to fix it, then exits
with 78 (bad configuration) or 69 (a service is unavailable). Otherwise it
execs the mode's service, which replaces it under supervisord, tini or
Kubernetes.
"""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from sahara_api_knobs import (
    EX_UNAVAILABLE,
    HERE,
    StartupError,
    check_knobs,
    check_tls,
    config_files,
    metrics_enabled,
    sahara_options,
    settings,
)

if TYPE_CHECKING:
    from oslo_config.cfg import ConfigOpts

# The launcher's modes, each with what it execs: the one list (its errors,
# the image's entrypoint and the tests' harness read it). api is the default.
MODES = {
    "api": "uWSGI with deploy/uwsgi.ini: the API's workers (nginx front: under deploy/relay.sh)",
    "engine": "sahara-engine",
    "all-in-one": "supervisord running the api and engine modes (deploy/supervisord.conf)",
    "db-sync": "sahara-db-manage upgrade head (idempotent)",
    "debug": "one process, green threads, restarted on code changes (make debug; needs requirements/dev.txt)",
    "check-uwsgi": "check that uWSGI has what deploy/uwsgi.ini needs (install and image build time)",
}
SERVING_MODES = ("api", "all-in-one", "debug")  # those that serve the API over HTTP
UWSGI_INI = HERE / "deploy" / "uwsgi.ini"
NGINX_CONF = HERE / "deploy" / "nginx.conf"
# With the nginx front it runs uWSGI and orders a stop front first (docs/signals.md).
RELAY = HERE / "deploy" / "relay.sh"
# Without these keystonemiddleware answers every request with 401 or 500.
# Every option may also come from the environment as oslo.config reads it,
# OS_<GROUP>__<OPTION> (the image and the chart do that): messages name both.
KEYSTONE_REQUIRED = ("www_authenticate_uri", "auth_url", "password")


# uWSGI options deploy/uwsgi.ini needs that pip builds only when their C
# headers are present (scripts/stack.sh installs them first); each with the fix.
UWSGI_FEATURES = {
    "--route-if": "internal routing (the 413 body limit) needs PCRE: install libpcre2-dev, then"
    " `pip install --no-cache-dir --force-reinstall uwsgi` (or rerun `make run`)",
}


def check_uwsgi(uwsgi: str) -> None:
    """Refuse a uWSGI built without a feature uwsgi.ini uses, with the fix,
    instead of its strict-mode "unknown config directive"."""
    try:
        options = subprocess.run([uwsgi, "--help"], capture_output=True, text=True, timeout=30).stdout
    except OSError as e:
        raise StartupError(f"cannot run {uwsgi} ({e.strerror}): install the requirements (make run does)") from None
    for option, fix in UWSGI_FEATURES.items():
        if option not in options.split():
            raise StartupError(f"{uwsgi} was built without {option}: {fix}")


# linux/prctl.h: the signal a process gets when its parent dies; kept across execve.
PR_SET_PDEATHSIG = 1


def die_with_supervisor(run_dir: str) -> None:
    """Under supervisord (it sets SUPERVISOR_PROCESS_NAME), ask for TERM (a
    graceful stop) when it dies, so a dead supervisor leaves no API or engine
    behind; refuse to start if it died before we asked."""
    if "SUPERVISOR_PROCESS_NAME" not in os.environ:
        return
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise StartupError(f"prctl(PR_SET_PDEATHSIG) failed ({os.strerror(ctypes.get_errno())}): run on Linux")
    try:  # deploy/supervisord.conf's pidfile, written before it starts programs
        supervisor = int(Path(run_dir, "supervisord.pid").read_text())
    except (OSError, ValueError):
        return
    if os.getppid() != supervisor:
        raise StartupError("supervisord died while this program started: start the deployment again", EX_UNAVAILABLE)


def load_conf(files: list[str]) -> ConfigOpts:
    """The few options the launcher needs, parsed from Sahara's own files."""
    from oslo_config import cfg

    conf = sahara_options()  # those the knobs depend on (sahara_api_knobs.py)
    conf.register_opt(cfg.StrOpt("transport_url"))
    conf.register_opt(cfg.StrOpt("connection"), group="database")
    conf.register_opt(cfg.BoolOpt("ssl", default=False), group="oslo_messaging_rabbit")
    conf.register_opts([cfg.StrOpt(name) for name in KEYSTONE_REQUIRED], group="keystone_authtoken")
    conf(args=[], project="sahara", default_config_files=files)
    return conf


# What SAHARA_API_FRONT=nginx needs from Debian; scripts/stack.sh and
# deploy/Dockerfile install the same list (tests/unit/test_knob_rules.py checks).
NGINX_PACKAGES = "nginx libnginx-mod-http-headers-more-filter"


def find_nginx(path: str | None = None) -> str:
    """nginx and setpriv (util-linux), which deploy/uwsgi.ini runs it with."""
    path = path if path is not None else os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    nginx = shutil.which("nginx", path=path)
    if not nginx or not shutil.which("setpriv", path=path):
        missing, packages = ("nginx", NGINX_PACKAGES) if not nginx else ("setpriv", "util-linux")
        raise StartupError(
            f"SAHARA_API_FRONT=nginx but {missing} is not installed: `apt-get install {packages}`,"
            " or set SAHARA_API_FRONT=direct behind a proxy of your own"
        )
    return nginx


def worker_sockets(knobs: dict[str, str]) -> list[str]:
    """With the nginx front, the workers' sockets: one per worker, which nginx
    balances by requests in flight; one for every worker when elastic (a
    stopped worker's own socket would only queue)."""
    run_dir = knobs["SAHARA_RUN_DIR"]
    if knobs["SAHARA_API_ELASTIC"] == "1":
        return [f"{run_dir}/uwsgi.sock"]
    return [f"{run_dir}/uwsgi-{n}.sock" for n in range(1, int(knobs["SAHARA_API_WORKERS"]) + 1)]


def uwsgi_socket_args(knobs: dict[str, str]) -> list[str]:
    """uWSGI's options for worker_sockets(): socket N-1 to worker N alone
    (uwsgi.ini cannot loop over the worker count inside its if-env)."""
    sockets = worker_sockets(knobs)
    args = [a for path in sockets for a in ("--socket", path)]
    if knobs["SAHARA_API_ELASTIC"] == "1":
        return args
    return args + [a for n in range(len(sockets)) for a in ("--map-socket", f"{n}:{n + 1}")]


def front_files(knobs: dict[str, str]) -> None:
    """deploy/front.sh's files, named here only: nginx's pidfile (uwsgi.ini
    and nginx.conf take it too) and the mark of a stop under way."""
    knobs["SAHARA_FRONT_PID"] = str(Path(knobs["SAHARA_RUN_DIR"], "nginx.pid"))
    knobs["SAHARA_FRONT_STOP"] = str(Path(knobs["SAHARA_RUN_DIR"], "front.stop"))


def render_nginx_conf(knobs: dict[str, str]) -> str:
    """deploy/nginx.conf with its @KNOB@s filled in, written to SAHARA_RUN_DIR."""
    tls = check_tls(knobs)
    values = {
        "LISTEN": f"{knobs['SAHARA_API_BIND']} ssl" if tls else knobs["SAHARA_API_BIND"],
        "TLS": (
            f"ssl_certificate {knobs['SAHARA_API_TLS_CERT']};\n"
            f"        ssl_certificate_key {knobs['SAHARA_API_TLS_KEY']};\n"
            "        ssl_protocols TLSv1.2 TLSv1.3;"
            if tls
            else ""
        ),
        "WORKERS": "\n        ".join(f"server unix:{path} max_fails=0;" for path in worker_sockets(knobs)),
        # Only root may switch users; nginx warns about the line otherwise.
        "USER": f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
        if os.geteuid() == 0
        else "",
        **{
            k: knobs[k]
            for k in (
                "SAHARA_RUN_DIR",
                "SAHARA_FRONT_PID",
                "SAHARA_API_MAX_BODY_MB",
                "SAHARA_API_TIMEOUT",
                "SAHARA_API_STOP_TIMEOUT",
            )
        },
    }
    text = NGINX_CONF.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    path = Path(knobs["SAHARA_RUN_DIR"]) / "nginx.conf"
    path.write_text(text)
    return str(path)


def check_nginx_conf(nginx: str, conf: str) -> None:
    """nginx's own check of the rendered file: its first error, in one line."""
    out = subprocess.run([nginx, "-t", "-q", "-e", "stderr", "-c", conf], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        error = next((line for line in out.stderr.splitlines() if "[emerg]" in line), out.stderr.strip())
        error = re.sub(r"^.*?\[emerg\] (\d+#\d+: )?", "", error)  # nginx's time, level and pid#tid
        raise StartupError(f"nginx refuses {conf}: {error}")


def make_run_dir(path: str) -> None:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as e:
        raise StartupError(
            f"cannot create SAHARA_RUN_DIR {path} ({e.strerror}): create it for this user or set another"
        ) from None


def check_port(host: str, port: str, knob: str = "SAHARA_API_PORT") -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as e:
            raise StartupError(
                f"cannot listen on {host}:{port} ({e.strerror}): stop what uses it or set {knob}",
                EX_UNAVAILABLE,
            ) from None


def check_database(url: str | None) -> None:
    import sqlalchemy

    if not url:
        raise StartupError(
            "[database] connection is not set: add it to your sahara.conf or set OS_DATABASE__CONNECTION"
        )
    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
        with engine.connect():
            pass
    except Exception as e:
        reason = str(getattr(e, "orig", None) or e).splitlines()[0]
        raise StartupError(
            f"cannot connect to the database {sqlalchemy.engine.make_url(url)!r} ({reason}): "
            "fix [database] connection or start the database",
            EX_UNAVAILABLE,
        ) from None


def broker_urls(url: str) -> tuple[list[str], bool]:
    """kombu URLs, one per host, of an oslo.messaging transport_url
    (rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost?ssl=1), and
    whether it asks for TLS. Not oslo_messaging.TransportURL: importing
    oslo.messaging costs 0.27 s of every start."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("rabbit", "amqp"):
        raise StartupError(
            f"[DEFAULT] transport_url must look like rabbit://user:password@host:5672/vhost, not {scheme or url!r}"
        )
    rest, _, query = rest.partition("?")
    hosts, _, vhost = rest.partition("/")
    tls = parse_qs(query).get("ssl", ["0"])[-1].lower() in ("1", "true", "yes")
    return [f"amqp://{host}/{vhost}" for host in hosts.split(",")], tls


def check_broker(url: str | None, tls: bool) -> None:
    """Log in to every broker host and open the vhost Sahara's RPC will use."""
    import kombu

    if not url:
        raise StartupError(
            "[DEFAULT] transport_url is not set: add it to your sahara.conf or set OS_DEFAULT__TRANSPORT_URL"
        )
    urls, tls_in_url = broker_urls(url)
    for connection in map(kombu.Connection, urls):
        where = f"{connection.hostname}:{connection.port or 5672}"
        try:
            if tls or tls_in_url:  # the certificate settings are oslo's: check the port only
                socket.create_connection((connection.hostname, connection.port or 5671), timeout=5).close()
            else:
                connection.connect_timeout = 5
                with connection:
                    connection.ensure_connection(max_retries=1)
        except Exception as e:
            raise StartupError(
                f"cannot reach the message broker at {where} ({e}): start RabbitMQ or fix [DEFAULT] transport_url",
                EX_UNAVAILABLE,
            ) from None


def check_services(conf: ConfigOpts, broker: bool) -> None:
    """The database and the broker, side by side (each waits on the network)."""
    with ThreadPoolExecutor(2) as pool:
        checks = [pool.submit(check_database, conf.database.connection)]
        if broker:
            checks.append(pool.submit(check_broker, conf.transport_url, conf.oslo_messaging_rabbit.ssl))
    for check in checks:  # in that order, so the same problem prints the same line
        check.result()


def check_keystone(conf: ConfigOpts) -> None:
    for name in KEYSTONE_REQUIRED:
        if not conf.keystone_authtoken[name]:
            raise StartupError(
                f"[keystone_authtoken] {name} is not set: add it to your sahara.conf"
                f" or set OS_KEYSTONE_AUTHTOKEN__{name.upper()}"
            )


def command(mode: str, files: list[str], knobs: dict[str, str]) -> list[str]:
    """What the launcher execs for each mode."""
    bindir = Path(sys.executable).parent
    config_args = [a for f in files for a in ("--config-file", f)]
    if mode == "api":
        return [str(bindir / "uwsgi"), "--ini", str(UWSGI_INI)]
    if mode == "engine":  # sahara-engine with its secrets marked (sahara_api_engine.py)
        return [sys.executable, str(HERE / "sahara_api_engine.py"), *config_args]
    if mode == "debug":  # one process, green threads, restarted on code changes
        grace = knobs["SAHARA_API_STOP_TIMEOUT"]
        return [str(bindir / "hupper"), "--shutdown-interval", grace, "-m", "sahara_api_debug"]
    if mode == "all-in-one":  # supervisord running the api and engine modes
        return [str(bindir / "supervisord"), "-c", str(HERE / "deploy" / "supervisord.conf")]
    if mode == "db-sync":
        return [str(bindir / "sahara-db-manage"), *config_args, "upgrade", "head"]
    raise unknown_mode(mode)


def unknown_mode(mode: str) -> StartupError:
    return StartupError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")


def main(argv: list[str]) -> None:
    """sahara_api_launcher.py [mode]: check, then exec the service."""
    mode = argv[0] if argv else "api"
    if mode == "modes":
        print("\n".join(f"{name:12} {what}" for name, what in MODES.items()))
        return
    try:
        if mode not in MODES:  # before the checks: a typo is named as one
            raise unknown_mode(mode)
        if mode == "check-uwsgi":  # at install and image build time: no config yet
            check_uwsgi(str(Path(sys.executable).parent / "uwsgi"))
            return
        knobs = settings()
        files = config_files(knobs)
        conf = load_conf(files)
        if mode != "db-sync":
            check_keystone(conf)
        cmd = command(mode, files, knobs)
        if mode == "api":
            check_uwsgi(cmd[0])
        if mode in ("api", "all-in-one", "debug"):  # sahara_api_knobs.py: workers, then every knob
            check_knobs(mode, knobs, conf, files)
        if mode in ("api", "debug"):
            check_port(knobs["SAHARA_API_HOST"], knobs["SAHARA_API_PORT"])
        if mode == "api" and metrics_enabled(knobs):
            check_port(knobs["SAHARA_METRICS_HOST"], knobs["SAHARA_METRICS_PORT"], "SAHARA_METRICS_PORT")
        if mode in ("api", "all-in-one"):
            make_run_dir(knobs["SAHARA_RUN_DIR"])
        if mode == "api" and knobs["SAHARA_API_FRONT"] == "nginx":
            knobs["SAHARA_FRONT_NGINX"] = find_nginx()  # deploy/front.sh runs it
            front_files(knobs)
            # The port is free (checked above), so a pidfile left by a killed run
            # names no nginx of ours: uWSGI would take a reused pid for it and never start nginx.
            for left in ("SAHARA_FRONT_PID", "SAHARA_FRONT_STOP"):
                Path(knobs[left]).unlink(missing_ok=True)
            cmd = ["/bin/bash", str(RELAY), *cmd, *uwsgi_socket_args(knobs)]
            check_nginx_conf(knobs["SAHARA_FRONT_NGINX"], render_nginx_conf(knobs))
        check_services(conf, broker=mode != "db-sync")
        if mode in ("api", "engine"):  # last, just before the exec
            die_with_supervisor(knobs["SAHARA_RUN_DIR"])
    except StartupError as e:
        print(f"sahara-api: ERROR: {e}", file=sys.stderr)
        sys.exit(e.code)
    sys.stdout.flush()
    env = {**os.environ, **knobs, "VIRTUAL_ENV": sys.prefix}
    env.pop("SAHARA_METRICS_ENABLED", None)
    if mode == "api" and metrics_enabled(knobs):
        env["SAHARA_METRICS_ENABLED"] = "1"  # deploy/uwsgi.ini's if-env
    if mode == "debug":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    # A stop signal is never ignored, however we were started (a background
    # job of a script ignores INT and QUIT, and bash cannot trap them then).
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    os.execve(cmd[0], cmd, env)


if __name__ == "__main__":
    main(sys.argv[1:])
