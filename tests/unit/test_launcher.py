"""The launcher's knob handling, without services."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import sahara_api_launcher as launcher
from sahara_wsgi_entry import EX_CONFIG, EX_UNAVAILABLE, StartupError, config_files, settings


def conf_with(tmp_path: Path, text: str) -> tuple[object, list[str]]:
    path = tmp_path / "sahara.conf"
    path.write_text(text)
    return launcher.load_conf([str(path)]), [str(path)]


def test_environment_overrides_defaults_env() -> None:
    knobs = settings({"SAHARA_API_PORT": "9999", "UNRELATED": "x"})
    assert knobs["SAHARA_API_PORT"] == "9999"
    assert knobs["SAHARA_API_HOST"] == "127.0.0.1"
    assert "UNRELATED" not in knobs


def test_env_wins_over_api_workers_in_config(tmp_path: Path) -> None:
    conf, files = conf_with(tmp_path, "[DEFAULT]\napi_workers = 3\n")
    assert launcher.resolve_workers({"SAHARA_API_WORKERS": "5"}, conf, files) == 5
    assert launcher.resolve_workers({}, conf, files) == 3


def test_default_worker_count_is_cpus_between_2_and_8(tmp_path: Path) -> None:
    conf, files = conf_with(tmp_path, "[DEFAULT]\n")
    assert 2 <= launcher.resolve_workers({}, conf, files) == launcher.default_workers() <= 8


@pytest.mark.parametrize("raw", ["many", "-1", "1.5", "", "100000"])
def test_bad_worker_counts_are_refused(tmp_path: Path, raw: str) -> None:
    conf, files = conf_with(tmp_path, "[DEFAULT]\n")
    with pytest.raises(StartupError) as err:
        launcher.resolve_workers({"SAHARA_API_WORKERS": raw}, conf, files)
    assert err.value.code == EX_CONFIG and "SAHARA_API_WORKERS" in str(err.value)


def test_zero_workers_points_to_debug_mode(tmp_path: Path) -> None:
    conf, files = conf_with(tmp_path, "[DEFAULT]\napi_workers = 0\n")
    with pytest.raises(StartupError, match="make debug"):
        launcher.resolve_workers({}, conf, files)


def test_config_files_are_colon_separated_and_checked(tmp_path: Path) -> None:
    a, b = tmp_path / "a.conf", tmp_path / "b.conf"
    a.write_text("")
    b.write_text("")
    assert config_files({"SAHARA_CONFIG_FILES": f"{a}:{b}"}) == [str(a), str(b)]
    with pytest.raises(StartupError, match="missing"):
        config_files({"SAHARA_CONFIG_FILES": f"{a}:{tmp_path / 'c.conf'}"})


def test_each_mode_execs_its_service() -> None:
    files, knobs = ["/etc/sahara/sahara.conf"], settings({})
    assert launcher.command("api", files, knobs)[1:] == ["--ini", str(launcher.UWSGI_INI)]
    assert launcher.command("engine", files, knobs)[1:3] == [
        str(launcher.HERE / "sahara_wsgi_entry.py"),
        "sahara-engine",
    ]
    assert launcher.command("db-sync", files, knobs)[-2:] == ["upgrade", "head"]
    assert launcher.command("debug", files, knobs)[-2:] == ["-m", "sahara_wsgi_entry"]


def test_stop_timeout_must_exceed_request_timeout() -> None:
    knobs = settings({"SAHARA_API_TIMEOUT": "90", "SAHARA_API_STOP_TIMEOUT": "90"})
    with pytest.raises(StartupError, match="SAHARA_API_STOP_TIMEOUT must be above"):
        launcher.check_server_knobs(knobs)
    knobs = settings({"SAHARA_API_MAX_REQUESTS": "1000"})
    launcher.check_server_knobs(knobs)
    assert knobs["SAHARA_API_MAX_REQUESTS_STEP"] == "100"


@pytest.mark.parametrize("raw", ["", "0"])
def test_metrics_port_zero_or_empty_turns_metrics_off(raw: str) -> None:
    knobs = settings({"SAHARA_METRICS_PORT": raw})
    launcher.check_server_knobs(knobs)
    assert not launcher.metrics_enabled(knobs)
    assert launcher.metrics_enabled(settings({})), "on by default"


@pytest.mark.parametrize("raw", ["metrics", "-1", "70000", "8386"])
def test_bad_metrics_ports_are_refused(raw: str) -> None:
    with pytest.raises(StartupError) as err:
        launcher.check_server_knobs(settings({"SAHARA_METRICS_PORT": raw}))
    assert err.value.code == EX_CONFIG and "SAHARA_METRICS_PORT" in str(err.value)
    assert "\n" not in str(err.value)


def test_taken_metrics_port_is_refused() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        with pytest.raises(StartupError) as err:
            launcher.check_port("127.0.0.1", port, "SAHARA_METRICS_PORT")
    assert err.value.code == EX_UNAVAILABLE
    assert str(err.value).startswith(f"cannot listen on 127.0.0.1:{port}") and "set SAHARA_METRICS_PORT" in str(
        err.value
    )


@pytest.mark.parametrize(
    ("url", "hosts", "tls"),
    [
        ("rabbit://u:p@h:5672/", [("h", 5672, "/", "p")], False),
        (
            "rabbit://u:p%40x@h1:5672,u:p@h2:5673/sahara?ssl=1",
            [("h1", 5672, "sahara", "p@x"), ("h2", 5673, "sahara", "p")],
            True,
        ),
        ("rabbit://u:p@[::1]:5672/v?heartbeat=10", [("::1", 5672, "v", "p")], False),
    ],
)
def test_broker_urls_follow_oslo_transport_url(url: str, hosts: list[tuple], tls: bool) -> None:
    import kombu

    urls, got_tls = launcher.broker_urls(url)
    assert got_tls is tls
    got = [(c.hostname, c.port, c.virtual_host, c.password) for c in map(kombu.Connection, urls)]
    assert got == hosts


def test_body_limit_must_hold_saharas_largest_upload() -> None:
    knobs = settings({"SAHARA_API_MAX_BODY_MB": "4"})
    with pytest.raises(StartupError, match="below \\[DEFAULT\\] job_binary_max_KB=5120"):
        launcher.check_server_knobs(knobs, job_binary_max_kb=5120)
    knobs = settings({"SAHARA_API_MAX_BODY_MB": "5"})
    launcher.check_server_knobs(knobs, job_binary_max_kb=5120)
    assert knobs["SAHARA_API_MAX_BODY_BYTES"] == str(5 * 1024 * 1024)


def test_front_is_nginx_or_direct() -> None:
    assert settings({})["SAHARA_API_FRONT"] == "nginx", "the buffering front is the default (issue 14)"
    for gone in ("proxy", "router"):  # the HTTP router cut requests on every reload: removed
        with pytest.raises(StartupError, match=f"SAHARA_API_FRONT='{gone}': set nginx or direct"):
            launcher.check_server_knobs(settings({"SAHARA_API_FRONT": gone}))
    launcher.check_server_knobs(settings({"SAHARA_API_FRONT": "direct"}))


def test_missing_nginx_is_one_line_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(
        StartupError, match="nginx is not installed: `apt-get install nginx libnginx-mod-http-headers-more-filter`"
    ):
        launcher.find_nginx(str(tmp_path))


def test_nginx_conf_is_rendered_and_accepted(tmp_path: Path) -> None:
    knobs = settings({"SAHARA_RUN_DIR": str(tmp_path), "SAHARA_API_HOST": "::1", "SAHARA_API_MAX_BODY_MB": "12"})
    conf = launcher.render_nginx_conf(knobs)
    text = Path(conf).read_text()
    assert not [line for line in text.splitlines() if "@" in line and not line.lstrip().startswith("#")]
    assert f"listen [::1]:{knobs['SAHARA_API_PORT']};" in text and "client_max_body_size 12m;" in text
    launcher.check_nginx_conf(launcher.find_nginx(), conf)  # nginx -t


def test_nginx_refusing_its_conf_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "nginx.conf"
    bad.write_text("events {}\nhttp { bogus_directive on; }\n")
    with pytest.raises(StartupError, match=r"^nginx refuses .*: unknown directive \"bogus_directive\""):
        launcher.check_nginx_conf(launcher.find_nginx(), str(bad))
