"""The launcher refuses a uWSGI that lacks a feature deploy/uwsgi.ini uses
(PCRE routing, compiled only when libpcre2-dev was there), with one line and
exit 78, in check-uwsgi mode (make install, the image build) and api mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import sahara_api_launcher as launcher
from harness.troubleshooting import assert_documented
from sahara_api_knobs import EX_CONFIG


def fake_venv(tmp_path: Path, uwsgi_help: str) -> Path:
    """A venv whose python is this one and whose uwsgi prints `uwsgi_help`: the
    launcher finds uwsgi next to its python, as in a real venv."""
    real = Path(sys.prefix)
    (tmp_path / "bin").mkdir(parents=True)
    (tmp_path / "pyvenv.cfg").write_text((real / "pyvenv.cfg").read_text())
    (tmp_path / "lib").symlink_to(real / "lib")
    (tmp_path / "bin" / "python").symlink_to(sys.executable)
    uwsgi = tmp_path / "bin" / "uwsgi"
    uwsgi.write_text(f"#!/bin/sh\ncat <<'HELP'\n{uwsgi_help}\nHELP\n")
    uwsgi.chmod(0o755)
    return tmp_path / "bin" / "python"


PCRELESS_HELP = "Usage: uwsgi [options...]\n    --http-socket   bind to the specified UNIX/TCP socket using HTTP"


@pytest.mark.parametrize("mode", ["check-uwsgi", "api"])
def test_uwsgi_without_internal_routing_is_refused_with_one_line(mode: str, tmp_path: Path) -> None:
    python = fake_venv(tmp_path / "venv", PCRELESS_HELP)
    conf = tmp_path / "sahara.conf"
    conf.write_text("[keystone_authtoken]\nwww_authenticate_uri = http://k/v3\nauth_url = http://k/v3\npassword = p\n")
    env = {**os.environ, "SAHARA_CONFIG_FILES": str(conf)}
    run = subprocess.run(
        [str(python), str(launcher.HERE / "sahara_api_launcher.py"), mode],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert run.returncode == EX_CONFIG, run.stderr
    assert run.stderr.splitlines() == [
        f"sahara-api: ERROR: {python.parent / 'uwsgi'} was built without --route-if: internal routing (the 413 body"
        " limit) needs PCRE: install libpcre2-dev, then `pip install --no-cache-dir --force-reinstall uwsgi`"
        " (or rerun `make run`)"
    ]
    assert_documented(run.stderr)


def test_uwsgi_with_internal_routing_passes(tmp_path: Path) -> None:
    python = fake_venv(tmp_path, PCRELESS_HELP + "\n    --route-if   add a route based on condition")
    run = subprocess.run(
        [str(python), str(launcher.HERE / "sahara_api_launcher.py"), "check-uwsgi"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (run.returncode, run.stderr) == (0, "")
