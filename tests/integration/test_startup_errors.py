"""Bad input and bad situations: one clear line, a meaningful exit code, and
nothing left running. Each case starts the real launcher against the real stack."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from harness.troubleshooting import assert_documented

EX_UNAVAILABLE, EX_CONFIG = 69, 78


def broken_conf(sahara_conf: Path, tmp_path: Path, pattern: str, replacement: str) -> str:
    text = sahara_conf.read_text()
    changed = re.sub(pattern, replacement, text, count=1, flags=re.M)
    assert changed != text, f"{pattern!r} not in the config"
    path = tmp_path / "broken.conf"
    path.write_text(changed)
    return str(path)


def fails_cleanly(launch, expected_rc: int, *words: str, mode: str = "api", **env) -> str:
    proc = launch(mode, wait=False, **env)
    rc = proc.wait(timeout=60)
    out = proc.log_text().strip()
    print(f"rc={rc}: {out}")
    assert proc.leftovers() == [], "processes left behind"
    assert rc == expected_rc
    assert len(out.splitlines()) == 1, "exactly one line"
    assert out.startswith("sahara-api: ERROR: ")
    for word in words:
        assert word in out
    assert_documented(out)
    return out


def test_missing_config_file(launch, tmp_path: Path) -> None:
    fails_cleanly(launch, EX_CONFIG, "missing", "SAHARA_CONFIG_FILES", SAHARA_CONFIG_FILES=str(tmp_path / "nope.conf"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_config_file(launch, sahara_conf: Path, tmp_path: Path) -> None:
    path = tmp_path / "secret.conf"
    path.write_text(sahara_conf.read_text())
    path.chmod(0)
    fails_cleanly(launch, EX_CONFIG, "unreadable", SAHARA_CONFIG_FILES=str(path))


@pytest.mark.parametrize("value", ["many", "-1", "2.5"])  # empty means automatic (defaults.env)
def test_bad_worker_count_from_env(launch, value: str) -> None:
    fails_cleanly(launch, EX_CONFIG, "SAHARA_API_WORKERS", SAHARA_API_WORKERS=value)


@pytest.mark.parametrize(
    ("name", "value"), [("SAHARA_API_THREADS", "0"), ("SAHARA_API_PORT", "http"), ("SAHARA_METRICS_PORT", "metrics")]
)
def test_bad_env_values(launch, name: str, value: str) -> None:
    fails_cleanly(launch, EX_CONFIG, name, **{name: value})


def test_bad_worker_count_in_config(launch, sahara_conf: Path, tmp_path: Path) -> None:
    conf = broken_conf(sahara_conf, tmp_path, r"^#api_workers = 2$", "api_workers = many")
    fails_cleanly(launch, EX_CONFIG, "api_workers", SAHARA_CONFIG_FILES=conf)


def test_wrong_database_password(launch, sahara_conf: Path, tmp_path: Path) -> None:
    conf = broken_conf(sahara_conf, tmp_path, r"sahara:dev-secret@127.0.0.1/sahara", "sahara:wrong@127.0.0.1/sahara")
    out = fails_cleanly(launch, EX_UNAVAILABLE, "database", "[database] connection", SAHARA_CONFIG_FILES=conf)
    assert "wrong" not in out, "the password must not be printed"


def test_database_not_listening(launch, sahara_conf: Path, tmp_path: Path) -> None:
    conf = broken_conf(sahara_conf, tmp_path, r"@127.0.0.1/sahara", "@127.0.0.1:1/sahara")
    fails_cleanly(launch, EX_UNAVAILABLE, "database", SAHARA_CONFIG_FILES=conf)


@pytest.mark.parametrize("mode", ["api", "engine"])
def test_broker_unreachable(launch, sahara_conf: Path, tmp_path: Path, mode: str) -> None:
    conf = broken_conf(sahara_conf, tmp_path, r"@127.0.0.1:5672/", "@127.0.0.1:1/")
    out = fails_cleanly(launch, EX_UNAVAILABLE, "message broker", "transport_url", mode=mode, SAHARA_CONFIG_FILES=conf)
    assert "dev-secret" not in out


@pytest.mark.parametrize("knob", ["SAHARA_API_PORT", "SAHARA_METRICS_PORT"])
def test_port_already_taken(launch, knob: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        fails_cleanly(launch, EX_UNAVAILABLE, f"127.0.0.1:{port}", knob, **{knob: port})


def test_unknown_mode(launch) -> None:
    fails_cleanly(launch, EX_CONFIG, "unknown mode", mode="bogus")
