"""The knobs of the deployment: the one reader of deploy/defaults.env.

    python sahara_api_knobs.py [api|debug|show|chart [--check]]

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

import functools
import ipaddress
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from oslo_config.cfg import ConfigOpts

HERE = Path(__file__).resolve().parent
DEFAULTS = HERE / "deploy" / "defaults.env"
EX_UNAVAILABLE, EX_CONFIG = 69, 78  # sysexits.h: a service is down / bad config
# Ranged knobs checked elsewhere: the worker count is resolved first (Sahara's
# api_workers may give it), the metrics port only when it is not 0 or empty.
UNCHECKED_HERE = ("SAHARA_API_WORKERS", "SAHARA_METRICS_PORT")


class StartupError(Exception):
    """One line saying what is wrong and how to fix it."""

    def __init__(self, message: str, code: int = EX_CONFIG) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Knob:
    """One knob as deploy/defaults.env declares it (its `#@` line)."""

    name: str
    default: str
    chart: str = ""  # the chart value's dotted path
    chart_default: str = ""  # the chart's own default, where it differs
    set_by: str = ""  # "chart" or "image": no chart value of its own
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] = ()
    boolean: bool = False


@functools.cache
def knob_table() -> tuple[Knob, ...]:
    """deploy/defaults.env's knobs in file order: KEY=value lines, each with the `#@` line above it.
    Read once per process: settings(), the checks and knob() all ask for it."""
    knobs, spec = [], ""
    for line in DEFAULTS.read_text().splitlines():
        if line.startswith("#@"):
            spec = line[2:]
        elif line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            knob = Knob(key.strip(), value.strip())
            for field in filter(None, (f.split() for f in spec.split(";"))):
                if field[0] == "chart":
                    knob.chart, knob.chart_default = field[1], " ".join(field[2:])
                elif field[0] == "set-by":
                    knob.set_by = field[1]
                elif field[0] == "range":
                    knob.low, knob.high = (int(x) for x in field[1].split(".."))
                elif field[0] == "choices":
                    knob.choices = tuple(field[1:])
                elif field[0] == "bool":
                    knob.boolean = True
                else:
                    raise ValueError(f"{DEFAULTS}: {key}: unknown `#@` field {field[0]!r}")
            knobs.append(knob)
            spec = ""
    return tuple(knobs)


def knob(name: str) -> Knob:
    return next(k for k in knob_table() if k.name == name)


def defaults() -> dict[str, str]:
    """deploy/defaults.env's KEY=value pairs."""
    return {knob.name: knob.default for knob in knob_table()}


FRONTS = knob("SAHARA_API_FRONT").choices


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
    workers = knob("SAHARA_API_WORKERS")
    return whole_number(where, raw, workers.low, workers.high)  # type: ignore[arg-type]


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
    ranged = {k.name: k for k in knob_table() if k.low is not None and k.name not in UNCHECKED_HERE}
    n = {name: whole_number(name, knobs[name], k.low, k.high) for name, k in ranged.items()}  # type: ignore[arg-type]
    if knobs["SAHARA_API_ELASTIC"] not in ("0", "1"):
        raise StartupError(f"SAHARA_API_ELASTIC={knobs['SAHARA_API_ELASTIC']!r}: set 0 (all workers) or 1 (elastic)")
    if knobs["SAHARA_API_ELASTIC"] == "1" and int(workers_given(knobs) or "2") < 2:
        raise StartupError(
            "SAHARA_API_ELASTIC=1 needs at least 2 workers to grow to: raise SAHARA_API_WORKERS or set 0"
        )
    port = n["SAHARA_API_PORT"]
    knobs["SAHARA_API_BIND"] = f"{api_host(knobs['SAHARA_API_HOST'])[0]}:{port}"  # uwsgi.ini's and nginx.conf's
    knobs["SAHARA_API_MAX_REQUESTS_STEP"] = str(max(1, n["SAHARA_API_MAX_REQUESTS"] // 10))
    max_body = n["SAHARA_API_MAX_BODY_MB"]
    if max_body * 1024 < job_binary_max_kb:
        raise StartupError(
            f"SAHARA_API_MAX_BODY_MB={max_body} is below [DEFAULT] job_binary_max_KB={job_binary_max_kb}:"
            " job binary uploads Sahara accepts would get 413: raise it"
        )
    knobs["SAHARA_API_MAX_BODY_BYTES"] = str(max_body * 1024 * 1024)
    if knobs["SAHARA_API_FRONT"] not in FRONTS:
        raise StartupError(
            f"SAHARA_API_FRONT={knobs['SAHARA_API_FRONT']!r}: set {' or '.join(FRONTS)} (docs/security.md)"
        )
    check_tls(knobs)
    if metrics_enabled(knobs):
        metrics = knob("SAHARA_METRICS_PORT")
        metrics_port = whole_number(metrics.name, knobs[metrics.name], metrics.low, metrics.high)  # type: ignore[arg-type]
        if metrics_port == port:
            raise StartupError(
                f"SAHARA_METRICS_PORT={metrics_port} is the API's port: set another, or 0 for no metrics"
            )
    if n["SAHARA_API_STOP_TIMEOUT"] <= n["SAHARA_API_TIMEOUT"]:
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


CHART = HERE / "deploy" / "helm" / "sahara-api"
KNOB_ENV = CHART / "templates" / "_knobs.tpl"
GENERATED = "Generated by `make chart-knobs` from deploy/defaults.env: edit that file, not this one."


def chart_value(k: Knob) -> str:
    """The knob's default as values.yaml writes it."""
    value = k.chart_default or k.default
    return {"1": "true", "0": "false"}[value] if k.boolean else value


def chart_files() -> dict[Path, str]:
    """The chart's copies of the knob table: values.yaml's knob defaults,
    values.schema.json's bounds and choices, and the api pod's env list."""
    import json

    table = [k for k in knob_table() if k.chart]
    # values.yaml: each knob's line under its parents, found by indentation (comments kept).
    values = CHART / "values.yaml"
    lines, path = values.read_text().splitlines(), []
    wanted = {k.chart: chart_value(k) for k in table}
    for i, line in enumerate(lines):
        key, sep, rest = line.strip().partition(":")
        if not sep or line.lstrip().startswith("#") or not key.replace("_", "").isalnum():
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        path = [*path[:depth], key]
        dotted = ".".join(path)
        if dotted in wanted and rest.strip():
            lines[i] = f"{line[: line.index(':') + 1]} {wanted.pop(dotted)}"
    if wanted:
        raise ValueError(f"{values}: no line for {sorted(wanted)}")
    # values.schema.json: bounds and choices.
    schema_path = CHART / "values.schema.json"
    schema = json.loads(schema_path.read_text())
    for k in table:
        node = schema
        for key in k.chart.split("."):
            node = node.setdefault("properties", {}).setdefault(key, {})
        if k.low is not None:
            node.update(type="integer", minimum=k.low, maximum=k.high)
        elif k.choices:
            node.update(type="string", enum=list(k.choices))
        elif k.boolean:
            node.update(type="boolean")
    # The api pod's env: every knob with an api.* value (the others depend on more values).
    env = [f"{{{{/* {GENERATED} */}}}}", '{{- define "sahara-api.knobEnv" -}}']
    for k in table:
        if k.chart.startswith("api."):
            ref = ".Values." + k.chart
            value = f'ternary "1" "0" {ref}' if k.boolean else f"{ref} | int" if k.low is not None else ref
            env += [f"- name: {k.name}", f"  value: {{{{ {value} | quote }}}}"]
    env.append("{{- end }}")
    return {
        values: "\n".join(lines) + "\n",
        schema_path: json.dumps(schema, indent=2) + "\n",
        KNOB_ENV: "\n".join(env) + "\n",
    }


def write_chart_files(check: bool) -> list[Path]:
    """Write chart_files(), or with `check` only list the stale ones."""
    files = chart_files()
    stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    if not check:
        for path in stale:
            path.write_text(files[path])
    return stale


def main(argv: list[str]) -> None:
    """Print deploy/defaults.env's knobs, the environment winning, resolved and checked for `mode`."""
    mode = argv[0] if argv else "api"
    if mode == "chart":  # make chart-knobs; --check: exit 1 when a generated file is stale
        stale = write_chart_files(check="--check" in argv)
        print("\n".join(f"{'stale' if '--check' in argv else 'wrote'} {p.relative_to(HERE)}" for p in stale))
        sys.exit(1 if stale and "--check" in argv else 0)
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
