"""The knobs' one reader, and the facts that must be the same in every
install path: the nginx packages and pip's own tool pins."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import sahara_api_launcher as launcher
from sahara_api_knobs import EX_CONFIG, HERE, defaults

STACK = (HERE / "scripts" / "stack.sh").read_text()
DOCKERFILE = (HERE / "deploy" / "Dockerfile").read_text()


def knobs_command(mode: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
    clean["SAHARA_CONFIG_FILES"] = str(HERE / "etc" / "sahara" / "sahara.conf")
    argv = [sys.executable, str(HERE / "sahara_api_knobs.py"), mode]
    return subprocess.run(argv, env={**clean, **env}, capture_output=True, text=True, timeout=60)


def test_the_command_prints_every_knob_the_environment_winning() -> None:
    out = knobs_command("api", SAHARA_API_FRONT="direct", SAHARA_API_THREADS="8", SAHARA_API_WORKERS="3")
    assert out.returncode == 0, out.stderr
    printed = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert list(printed) == list(defaults())
    assert (printed["SAHARA_API_FRONT"], printed["SAHARA_API_THREADS"]) == ("direct", "8")
    assert printed["SAHARA_API_WORKERS"] == "3" and printed["SAHARA_API_TLS_CERT"] == "''", "shell-quoted"


def test_the_command_resolves_an_empty_worker_count() -> None:
    out = knobs_command("api")
    assert re.search(r"^SAHARA_API_WORKERS=[1-9]\d*$", out.stdout, re.M), out.stdout


def test_the_command_refuses_a_bad_knob_with_the_launchers_line() -> None:
    out = knobs_command("api", SAHARA_API_THREADS="0")
    assert out.returncode == EX_CONFIG and out.stdout == ""
    assert out.stderr == "sahara-api: ERROR: SAHARA_API_THREADS=0 is out of range: set a whole number from 1 to 256\n"
    assert knobs_command("show", SAHARA_API_THREADS="0").returncode == 0, "show does not check"


def test_nginx_packages_are_the_same_in_every_install() -> None:
    assert launcher.NGINX_PACKAGES in STACK.split("APT_PACKAGES=(", 1)[1].split(")", 1)[0]
    assert launcher.NGINX_PACKAGES in DOCKERFILE


def test_pip_tool_pins_are_the_same_on_a_host_and_in_the_image() -> None:
    for tool, env in (("pip", "PIP"), ("setuptools", "SETUPTOOLS"), ("wheel", "WHEEL")):
        pinned = re.search(rf"PYTHON_{env}_VERSION=(\S+)", DOCKERFILE).group(1)
        assert f"'{tool}=={pinned}'" in STACK, f"scripts/stack.sh pins {tool} unlike the Dockerfile ({pinned})"
