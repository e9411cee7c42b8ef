"""The operator docs cannot drift from the code: every knob is in the
configuration reference, every make target has a help line, and every error
line the launcher's pure checks print is on the troubleshooting page (the
checks that need services are held to it in tests/integration)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import sahara_api_knobs as knobs_module
import sahara_api_launcher as launcher
from harness.troubleshooting import assert_documented
from sahara_api_knobs import HERE as ROOT
from sahara_api_knobs import StartupError, config_files, settings

REFERENCE = (ROOT / "docs" / "configuration.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()


@pytest.mark.parametrize("knob", sorted(settings({})))
def test_every_defaults_env_knob_is_in_the_reference(knob: str) -> None:
    assert f"`{knob}`" in REFERENCE, f"{knob} (deploy/defaults.env) is missing from docs/configuration.md"


VALUES = yaml.safe_load((ROOT / "deploy/helm/sahara-api/values.yaml").read_text())


@pytest.mark.parametrize("key", sorted(VALUES))
def test_every_top_level_chart_value_is_in_the_reference(key: str) -> None:
    assert f"`{key}" in REFERENCE, f"chart value {key} (values.yaml) is missing from docs/configuration.md"


PHONY = re.search(r"^\.PHONY: (.*)$", MAKEFILE, re.M).group(1).split()


def test_make_help_lists_every_target_with_one_line() -> None:
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    listed = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    missing = [t for t in PHONY if t not in listed or len(listed[t].split()) < 2]
    assert not missing, f"add a `## ` line to these Makefile targets: {missing}"


def conf(tmp_path: Path, text: str) -> tuple[object, list[str]]:
    path = tmp_path / "sahara.conf"
    path.write_text(text)
    return launcher.load_conf([str(path)]), [str(path)]


def knobs(**env: str) -> dict[str, str]:
    return settings(env)


# Each check that needs no service, with a bad input, as the launcher runs it.
PURE_CHECKS: dict[str, Callable[[Path], object]] = {
    "config file missing": lambda tmp: config_files({"SAHARA_CONFIG_FILES": str(tmp / "nope.conf")}),
    "workers not an integer": lambda tmp: knobs_module.resolve_workers({"SAHARA_API_WORKERS": "many"}, *conf(tmp, "")),
    "workers out of range": lambda tmp: knobs_module.resolve_workers({"SAHARA_API_WORKERS": "-1"}, *conf(tmp, "")),
    "workers 0": lambda tmp: knobs_module.resolve_workers({"SAHARA_API_WORKERS": "0"}, *conf(tmp, "")),
    "api_workers not an integer": lambda tmp: knobs_module.resolve_workers(
        {}, *conf(tmp, "[DEFAULT]\napi_workers = many\n")
    ),
    "api_workers 0": lambda tmp: knobs_module.resolve_workers({}, *conf(tmp, "[DEFAULT]\napi_workers = 0\n")),
    "threads": lambda tmp: knobs_module.check_server_knobs(knobs(SAHARA_API_THREADS="0")),
    "cpu slots": lambda tmp: knobs_module.check_server_knobs(knobs(SAHARA_API_CPU_SLOTS="-1")),
    "elastic": lambda tmp: knobs_module.check_server_knobs(knobs(SAHARA_API_ELASTIC="yes")),
    "elastic needs 2 workers": lambda tmp: knobs_module.check_server_knobs(
        knobs(SAHARA_API_ELASTIC="1", SAHARA_API_WORKERS="1")
    ),
    "port": lambda tmp: knobs_module.check_server_knobs(knobs(SAHARA_API_PORT="http")),
    "host in brackets": lambda tmp: knobs_module.check_server_knobs(knobs(SAHARA_API_HOST="[::1]")),
    "host with a scope": lambda tmp: knobs_module.check_server_knobs(knobs(SAHARA_API_HOST="fe80::1%eth0")),
    "max requests": lambda tmp: knobs_module.check_server_knobs(knobs(SAHARA_API_MAX_REQUESTS="0")),
    "max rss": lambda tmp: knobs_module.check_server_knobs(knobs(SAHARA_API_MAX_RSS_MB="big")),
    "timeout": lambda tmp: knobs_module.check_server_knobs(knobs(SAHARA_API_TIMEOUT="0")),
    "stop timeout": lambda tmp: knobs_module.check_server_knobs(knobs(SAHARA_API_STOP_TIMEOUT="90")),
    "metrics port": lambda tmp: knobs_module.check_server_knobs(knobs(SAHARA_METRICS_PORT="metrics")),
    "metrics port is the API's": lambda tmp: knobs_module.check_server_knobs(knobs(SAHARA_METRICS_PORT="8386")),
    "run dir": lambda tmp: launcher.make_run_dir("/proc/sahara"),
    "keystone www_authenticate_uri": lambda tmp: launcher.check_keystone(conf(tmp, "")[0]),
    "keystone password": lambda tmp: launcher.check_keystone(
        conf(tmp, "[keystone_authtoken]\nwww_authenticate_uri = http://k/v3\nauth_url = http://k/v3\n")[0]
    ),
    "no database": lambda tmp: launcher.check_database(None),
    "no broker": lambda tmp: launcher.check_broker(None, False),
    "not rabbit": lambda tmp: launcher.check_broker("kafka://k:9092", False),
    "body limit": lambda tmp: knobs_module.check_server_knobs(knobs(SAHARA_API_MAX_BODY_MB="4"), 5120),
    "front": lambda tmp: knobs_module.check_server_knobs(knobs(SAHARA_API_FRONT="proxy")),
    "nginx missing": lambda tmp: launcher.find_nginx(str(tmp)),
    "TLS half set": lambda tmp: knobs_module.check_tls(knobs(SAHARA_API_TLS_CERT="/etc/ssl/api.pem")),
    "TLS without nginx": lambda tmp: knobs_module.check_tls(
        knobs(SAHARA_API_TLS_CERT="/c.pem", SAHARA_API_TLS_KEY="/k.pem", SAHARA_API_FRONT="direct")
    ),
    "TLS file missing": lambda tmp: knobs_module.check_tls(
        knobs(SAHARA_API_TLS_CERT="/etc/ssl/api.pem", SAHARA_API_TLS_KEY="/etc/ssl/api.key")
    ),
    "unknown mode": lambda tmp: launcher.command("bogus", [], knobs()),
    "debug workers": lambda tmp: knobs_module.check_debug_workers({"SAHARA_API_WORKERS": "4"}, conf(tmp, "")[0]),
}


@pytest.mark.parametrize("check", PURE_CHECKS)
def test_each_startup_error_is_on_the_troubleshooting_page(check: str, tmp_path: Path) -> None:
    with pytest.raises(StartupError) as err:
        PURE_CHECKS[check](tmp_path)
    assert_documented(f"sahara-api: ERROR: {err.value}")


def test_the_modes_table_is_the_launchers() -> None:
    """configuration.md's table of modes names the launcher's MODES, in order."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    section = doc.split("## Modes of the launcher", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^\| `([a-z-]+)`", section, re.M) == list(launcher.MODES)
