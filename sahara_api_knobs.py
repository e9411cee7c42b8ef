"""The knobs of the deployment: the one reader of deploy/defaults.env.

    python sahara_api_knobs.py [api|debug|show]

prints every knob as `KEY=value` lines a shell can eval (quoted with shlex),
checked for serving the API (api, the default) or in debug mode (debug), or
unchecked (show: for scripts that only read a value). The Makefile's scripts
and the image's entrypoint take their values from here; nothing else parses
deploy/defaults.env. A bad value prints one line, `sahara-api: ERROR: <what
is wrong>: <the fix>`, and exits 78: the launcher's line for it (the launcher
checks with the same functions).

One precedence everywhere: the environment over deploy/defaults.env; for the
worker count, SAHARA_API_WORKERS (empty: automatic) over Sahara's
`[DEFAULT] api_workers` over one worker per CPU (2..8). Both this command
and the launcher resolve the worker count and check the body limit against
Sahara's config files (SAHARA_CONFIG_FILES).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from oslo_config.cfg import ConfigOpts

HERE = Path(__file__).resolve().parent
DEFAULTS = HERE / "deploy" / "defaults.env"
EX_UNAVAILABLE, EX_CONFIG = 69, 78  # sysexits.h: a service is down / bad config
FRONTS = ("nginx", "direct")


class StartupError(Exception):
    """One line saying what is wrong and how to fix it."""

    def __init__(self, message: str, code: int = EX_CONFIG) -> None:
        super().__init__(message)
        self.code = code


def defaults() -> dict[str, str]:
    """deploy/defaults.env: KEY=value lines; `#` comments and blank lines skipped."""
    values = {}
    for line in DEFAULTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def settings(env: dict[str, str] | None = None) -> dict[str, str]:
    """deploy/defaults.env overlaid with the environment (the environment wins)."""
    env = os.environ if env is None else env
    values = defaults()
    return {**values, **{k: v for k, v in env.items() if k in values}}


def config_files(knobs: dict[str, str]) -> list[str]:
    files = [f for f in knobs["SAHARA_CONFIG_FILES"].split(":") if f]
    for f in files:
        if not os.access(f, os.R_OK):
            raise StartupError(
                f"config file {f} is missing or unreadable: create it or point SAHARA_CONFIG_FILES at yours"
            )
    return files


def sahara_options() -> ConfigOpts:
    """The options of Sahara's config files that knobs depend on, not parsed yet
    (the launcher registers its own too, then parses)."""
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.IntOpt("api_workers"))
    conf.register_opt(cfg.IntOpt("job_binary_max_KB", default=5120))
    return conf


def whole_number(where: str, raw: str, low: int = 1, high: int = 65535) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise StartupError(f"{where}={raw!r} is not an integer: set a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise StartupError(f"{where}={value} is out of range: set a whole number from {low} to {high}")
    return value


def default_workers() -> int:
    """One process per CPU (the API is CPU-bound; threads cover the waiting), 2..8."""
    return max(2, min(len(os.sched_getaffinity(0)), 8))


def workers_given(knobs: dict[str, str]) -> str | None:
    """SAHARA_API_WORKERS as set, or None when unset or empty (automatic)."""
    raw = knobs.get("SAHARA_API_WORKERS")
    return raw if raw and raw.strip() else None


def resolve_workers(knobs: dict[str, str], conf: ConfigOpts, files: list[str]) -> int:
    """SAHARA_API_WORKERS, else [DEFAULT] api_workers, else default_workers()."""
    where, raw = "SAHARA_API_WORKERS", workers_given(knobs)
    if raw is None:
        where = "[DEFAULT] api_workers"
        try:
            value = conf.api_workers
        except ValueError:  # oslo's ConfigFileValueError
            raise StartupError(f"{where} in {':'.join(files)} is not an integer: set a whole number >= 1") from None
        if value is None:
            return default_workers()
        raw = str(value)
    if raw.strip() == "0":
        raise StartupError(f"{where}=0 means one process with green threads: run `make debug` for that")
    return whole_number(where, raw, 1, 512)


def check_debug_workers(knobs: dict[str, str], conf: ConfigOpts) -> None:
    """Debug mode is one process: refuse a worker count that promises more."""
    where, raw = "SAHARA_API_WORKERS", workers_given(knobs)
    if raw is None:
        where, raw = "[DEFAULT] api_workers", str(conf.api_workers if conf.api_workers is not None else 0)
    if raw.strip() not in ("0", "1"):
        raise StartupError(
            f"{where}={raw!r}: debug mode runs one process with green threads (so pdb works): set it to 0 or unset it"
        )


HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")


def api_host(raw: str) -> tuple[str, str]:
    """SAHARA_API_HOST, read once: how a socket address writes it (an IPv6
    address in brackets: uWSGI reads `::1:8386` as 255.255.255.255:8386) and
    where a client on this host reaches it (a wildcard on loopback)."""
    try:
        ip = ipaddress.ip_address(raw)
    except ValueError:
        if not HOST_NAME.fullmatch(raw):
            raise StartupError(
                f"SAHARA_API_HOST={raw!r} is not an IP address or host name: set e.g. 127.0.0.1, ::1, 0.0.0.0"
                " or :: (an IPv6 address without brackets, scope or port)"
            ) from None
        return raw, raw
    if ip.version == 4:
        return raw, "127.0.0.1" if ip.is_unspecified else raw
    if ip.scope_id:
        raise StartupError(f"SAHARA_API_HOST={raw!r}: uWSGI and nginx take no IPv6 scope: set an address without %")
    return f"[{raw}]", "[::1]" if ip.is_unspecified else f"[{raw}]"


def metrics_enabled(knobs: dict[str, str]) -> bool:
    """SAHARA_METRICS_PORT 0 or empty turns the exporter off."""
    return knobs.get("SAHARA_METRICS_PORT", "").strip() not in ("", "0")


def check_tls(knobs: dict[str, str]) -> bool:
    """SAHARA_API_TLS_CERT and _KEY: both or neither, readable, nginx's front only."""
    cert, key = knobs.get("SAHARA_API_TLS_CERT", ""), knobs.get("SAHARA_API_TLS_KEY", "")
    if not cert and not key:
        return False
    if not cert or not key:
        raise StartupError("SAHARA_API_TLS_CERT and SAHARA_API_TLS_KEY go together: set both (HTTPS) or neither")
    if knobs["SAHARA_API_FRONT"] != "nginx":
        raise StartupError("SAHARA_API_TLS_CERT is served by the nginx front: set SAHARA_API_FRONT=nginx or unset it")
    for knob, path in (("SAHARA_API_TLS_CERT", cert), ("SAHARA_API_TLS_KEY", key)):
        if not os.access(path, os.R_OK):
            raise StartupError(f"{knob}={path} is missing or unreadable: point it at a PEM file this user can read")
    return True


def check_server_knobs(knobs: dict[str, str], job_binary_max_kb: int = 5120) -> None:
    """The numeric knobs of deploy/defaults.env; derives uWSGI's recycling step and body limit."""
    whole_number("SAHARA_API_THREADS", knobs["SAHARA_API_THREADS"], 1, 256)
    whole_number("SAHARA_API_CPU_SLOTS", knobs["SAHARA_API_CPU_SLOTS"], 0, 256)
    if knobs["SAHARA_API_ELASTIC"] not in ("0", "1"):
        raise StartupError(f"SAHARA_API_ELASTIC={knobs['SAHARA_API_ELASTIC']!r}: set 0 (all workers) or 1 (elastic)")
    if knobs["SAHARA_API_ELASTIC"] == "1" and int(workers_given(knobs) or "2") < 2:
        raise StartupError(
            "SAHARA_API_ELASTIC=1 needs at least 2 workers to grow to: raise SAHARA_API_WORKERS or set 0"
        )
    port = whole_number("SAHARA_API_PORT", knobs["SAHARA_API_PORT"])
    knobs["SAHARA_API_BIND"] = f"{api_host(knobs['SAHARA_API_HOST'])[0]}:{port}"  # uwsgi.ini's and nginx.conf's
    max_requests = whole_number("SAHARA_API_MAX_REQUESTS", knobs["SAHARA_API_MAX_REQUESTS"], 1, 10**9)
    knobs["SAHARA_API_MAX_REQUESTS_STEP"] = str(max(1, max_requests // 10))
    whole_number("SAHARA_API_MAX_RSS_MB", knobs["SAHARA_API_MAX_RSS_MB"], 1, 10**6)
    max_body = whole_number("SAHARA_API_MAX_BODY_MB", knobs["SAHARA_API_MAX_BODY_MB"], 1, 10**6)
    if max_body * 1024 < job_binary_max_kb:
        raise StartupError(
            f"SAHARA_API_MAX_BODY_MB={max_body} is below [DEFAULT] job_binary_max_KB={job_binary_max_kb}:"
            " job binary uploads Sahara accepts would get 413: raise it"
        )
    knobs["SAHARA_API_MAX_BODY_BYTES"] = str(max_body * 1024 * 1024)
    if knobs["SAHARA_API_FRONT"] not in FRONTS:
        raise StartupError(f"SAHARA_API_FRONT={knobs['SAHARA_API_FRONT']!r}: set nginx or direct (docs/security.md)")
    check_tls(knobs)
    if metrics_enabled(knobs):
        metrics_port = whole_number("SAHARA_METRICS_PORT", knobs["SAHARA_METRICS_PORT"])
        if metrics_port == int(knobs["SAHARA_API_PORT"]):
            raise StartupError(
                f"SAHARA_METRICS_PORT={metrics_port} is the API's port: set another, or 0 for no metrics"
            )
    timeout = whole_number("SAHARA_API_TIMEOUT", knobs["SAHARA_API_TIMEOUT"], 1, 86400)
    if whole_number("SAHARA_API_STOP_TIMEOUT", knobs["SAHARA_API_STOP_TIMEOUT"], 1, 86400) <= timeout:
        raise StartupError(
            "SAHARA_API_STOP_TIMEOUT must be above SAHARA_API_TIMEOUT, or stops kill requests still running: raise it"
        )


def check_knobs(
    mode: str, knobs: dict[str, str], conf: ConfigOpts | None = None, files: list[str] | None = None
) -> None:
    """Every knob for a mode that serves the API (api, all-in-one, debug),
    against Sahara's config files (parsed here unless given); the worker count
    is resolved into knobs."""
    if conf is None:
        files = config_files(knobs)
        conf = sahara_options()
        conf(args=[], project="sahara", default_config_files=files)
    if mode == "debug":
        check_debug_workers(knobs, conf)
    else:
        knobs["SAHARA_API_WORKERS"] = str(resolve_workers(knobs, conf, files or []))
    check_server_knobs(knobs, conf.job_binary_max_KB)


def main(argv: list[str]) -> None:
    """Print deploy/defaults.env's knobs, the environment winning, resolved and checked for `mode`."""
    mode = argv[0] if argv else "api"
    knobs = settings()
    try:
        if mode not in ("api", "debug", "show"):
            raise StartupError(f"unknown mode {mode!r}: use api, debug or show")
        if mode != "show":
            resolved = dict(knobs)
            check_knobs(mode, resolved)
            knobs = {key: resolved[key] for key in knobs}
    except StartupError as e:
        print(f"sahara-api: ERROR: {e}", file=sys.stderr)
        sys.exit(e.code)
    print("\n".join(f"{key}={shlex.quote(value)}" for key, value in knobs.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
