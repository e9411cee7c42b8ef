"""The launcher's knob handling, without services."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sahara_api_knobs as knobs_module
import sahara_api_launcher as launcher
from sahara_api_knobs import EX_CONFIG, EX_UNAVAILABLE, StartupError, config_files, settings


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
    assert knobs_module.resolve_workers({"SAHARA_API_WORKERS": "5"}, conf, files) == 5
    assert knobs_module.resolve_workers({}, conf, files) == 3


def test_default_worker_count_is_cpus_between_2_and_8(tmp_path: Path) -> None:
    conf, files = conf_with(tmp_path, "[DEFAULT]\n")
    assert 2 <= knobs_module.resolve_workers({}, conf, files) == knobs_module.default_workers() <= 8


@pytest.mark.parametrize("raw", ["many", "-1", "1.5", "100000"])
def test_bad_worker_counts_are_refused(tmp_path: Path, raw: str) -> None:
    conf, files = conf_with(tmp_path, "[DEFAULT]\n")
    with pytest.raises(StartupError) as err:
        knobs_module.resolve_workers({"SAHARA_API_WORKERS": raw}, conf, files)
    assert err.value.code == EX_CONFIG and "SAHARA_API_WORKERS" in str(err.value)


def test_zero_workers_points_to_debug_mode(tmp_path: Path) -> None:
    conf, files = conf_with(tmp_path, "[DEFAULT]\napi_workers = 0\n")
    with pytest.raises(StartupError, match="make debug"):
        knobs_module.resolve_workers({}, conf, files)


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
        str(launcher.HERE / "sahara_api_engine.py"),
        "--config-file",
    ]
    assert launcher.command("db-sync", files, knobs)[-2:] == ["upgrade", "head"]
    assert launcher.command("debug", files, knobs)[-2:] == ["-m", "sahara_api_debug"]


def test_stop_timeout_must_exceed_request_timeout() -> None:
    knobs = settings({"SAHARA_API_TIMEOUT": "90", "SAHARA_API_STOP_TIMEOUT": "90"})
    with pytest.raises(StartupError, match="SAHARA_API_STOP_TIMEOUT must be above"):
        knobs_module.check_server_knobs(knobs)
    knobs = settings({"SAHARA_API_MAX_REQUESTS": "1000"})
    knobs_module.check_server_knobs(knobs)
    assert knobs["SAHARA_API_MAX_REQUESTS_STEP"] == "100"


@pytest.mark.parametrize("raw", ["", "0"])
def test_metrics_port_zero_or_empty_turns_metrics_off(raw: str) -> None:
    knobs = settings({"SAHARA_METRICS_PORT": raw})
    knobs_module.check_server_knobs(knobs)
    assert not knobs_module.metrics_enabled(knobs)
    assert knobs_module.metrics_enabled(settings({})), "on by default"


@pytest.mark.parametrize("raw", ["metrics", "-1", "70000", "8386"])
def test_bad_metrics_ports_are_refused(raw: str) -> None:
    with pytest.raises(StartupError) as err:
        knobs_module.check_server_knobs(settings({"SAHARA_METRICS_PORT": raw}))
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
        knobs_module.check_server_knobs(knobs, job_binary_max_kb=5120)
    knobs = settings({"SAHARA_API_MAX_BODY_MB": "5"})
    knobs_module.check_server_knobs(knobs, job_binary_max_kb=5120)
    assert knobs["SAHARA_API_MAX_BODY_BYTES"] == str(5 * 1024 * 1024)


@pytest.mark.parametrize(
    ("host", "bind", "client"),
    [
        ("127.0.0.1", "127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "0.0.0.0", "127.0.0.1"),
        ("::1", "[::1]", "[::1]"),
        ("::", "[::]", "[::1]"),
        ("api.example.org", "api.example.org", "api.example.org"),
    ],
)
def test_api_host_is_read_once_in_each_form(host: str, bind: str, client: str) -> None:
    """uWSGI's socket and nginx's listen take an IPv6 address in brackets (issue 30)."""
    assert knobs_module.api_host(host) == (bind, client)
    knobs = settings({"SAHARA_API_HOST": host, "SAHARA_API_PORT": "8386"})
    knobs_module.check_server_knobs(knobs)
    assert knobs["SAHARA_API_BIND"] == f"{bind}:8386"


@pytest.mark.parametrize("host", ["[::1]", "127.0.0.1:8386", "fe80::1%eth0", "host name", "a/b", ""])
def test_hosts_uwsgi_or_nginx_would_misread_are_refused(host: str) -> None:
    with pytest.raises(StartupError, match="SAHARA_API_HOST="):
        knobs_module.api_host(host)


def test_front_is_nginx_or_direct() -> None:
    assert settings({})["SAHARA_API_FRONT"] == "nginx", "the buffering front is the default (issue 14)"
    for gone in ("proxy", "router"):  # the HTTP router cut requests on every reload: removed
        with pytest.raises(StartupError, match=f"SAHARA_API_FRONT='{gone}': set nginx or direct"):
            knobs_module.check_server_knobs(settings({"SAHARA_API_FRONT": gone}))
    knobs_module.check_server_knobs(settings({"SAHARA_API_FRONT": "direct"}))


def test_missing_nginx_is_one_line_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(
        StartupError, match="nginx is not installed: `apt-get install nginx libnginx-mod-http-headers-more-filter`"
    ):
        launcher.find_nginx(str(tmp_path))


def test_nginx_conf_is_rendered_and_accepted(tmp_path: Path) -> None:
    knobs = settings({"SAHARA_RUN_DIR": str(tmp_path), "SAHARA_API_HOST": "::1", "SAHARA_API_MAX_BODY_MB": "12"})
    knobs["SAHARA_API_WORKERS"] = "2"  # resolved by check_knobs before the launcher renders
    knobs_module.check_server_knobs(knobs)
    launcher.front_files(knobs)
    conf = launcher.render_nginx_conf(knobs)
    text = Path(conf).read_text()
    assert not [line for line in text.splitlines() if "@" in line and not line.lstrip().startswith("#")]
    assert f"listen [::1]:{knobs['SAHARA_API_PORT']};" in text and "client_max_body_size 12m;" in text
    # A graceful QUIT needs nginx's master/worker mode, bounded by harakiri's timeout (docs/signals.md).
    assert "master_process on;" in text and f"worker_shutdown_timeout {knobs['SAHARA_API_TIMEOUT']}s;" in text
    # As root, the worker stays this user, who owns uWSGI's socket.
    assert ("user root root;" in text) == (os.geteuid() == 0)
    launcher.check_nginx_conf(launcher.find_nginx(), conf)  # nginx -t


@pytest.mark.parametrize("elastic", ["0", "1"])
def test_nginx_balances_workers_by_requests_in_flight(tmp_path: Path, elastic: str) -> None:
    """A socket per worker, least_conn across them, never a second try (a PUT
    that got its worker killed would kill the next); elastic workers come and
    go: one socket for all (docs/tuning.md)."""
    knobs = settings({"SAHARA_RUN_DIR": str(tmp_path), "SAHARA_API_WORKERS": "3", "SAHARA_API_ELASTIC": elastic})
    knobs_module.check_server_knobs(knobs)
    launcher.front_files(knobs)
    text = Path(launcher.render_nginx_conf(knobs)).read_text()
    servers = [line.strip() for line in text.splitlines() if line.strip().startswith("server unix:")]
    args = launcher.uwsgi_socket_args(knobs)
    if elastic == "1":
        assert servers == [f"server unix:{tmp_path}/uwsgi.sock max_fails=0;"]
        assert args == ["--socket", f"{tmp_path}/uwsgi.sock"]
    else:
        own = [f"{tmp_path}/uwsgi-{n}.sock" for n in (1, 2, 3)]
        assert servers == [f"server unix:{path} max_fails=0;" for path in own]
        assert args == [a for p in own for a in ("--socket", p)] + [
            a for n in (0, 1, 2) for a in ("--map-socket", f"{n}:{n + 1}")
        ]
    assert "least_conn;" in text and "uwsgi_pass workers;" in text and "uwsgi_next_upstream off;" in text
    launcher.check_nginx_conf(launcher.find_nginx(), str(tmp_path / "nginx.conf"))


def test_nginx_refusing_its_conf_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "nginx.conf"
    bad.write_text("events {}\nhttp { bogus_directive on; }\n")
    with pytest.raises(StartupError, match=r"^nginx refuses .*: unknown directive \"bogus_directive\""):
        launcher.check_nginx_conf(launcher.find_nginx(), str(bad))


# A parent that writes its pid where supervisord would, starts a child that
# calls die_with_supervisor() then execs `sleep`, prints the child's pid, exits.
SUPERVISOR_STANDIN = """
import os, subprocess, sys
open(os.path.join(sys.argv[1], "supervisord.pid"), "w").write(str(os.getpid()))
child = (
    "import os, sys, sahara_api_launcher as l\\n"
    "try:\\n    l.die_with_supervisor(sys.argv[1])\\n"
    "except l.StartupError as e:\\n    print(e, flush=True); sys.exit(e.code)\\n"
    "os.execv('/bin/sleep', ['sleep', '300'])"
)
p = subprocess.Popen([sys.executable, "-c", child, sys.argv[1]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(p.pid, flush=True)
"""


def run_standin(tmp_path: Path, supervised: bool) -> int:
    """The child's pid, once the stand-in supervisor is gone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    if supervised:
        env["SUPERVISOR_PROCESS_NAME"] = "sahara-api"  # supervisord sets it in its programs
    out = subprocess.run(
        [sys.executable, "-c", SUPERVISOR_STANDIN, str(tmp_path)],
        env={**env, "PYTHONPATH": str(Path(launcher.__file__).parent)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return int(out.stdout.split()[0])


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_program_under_supervisord_gets_term_when_it_dies(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG survives the exec: the exec'd program gets TERM when its supervisor dies."""
    child = run_standin(tmp_path, supervised=True)
    assert gone_within(child, 10), "still running after its supervisor died"


def test_outside_supervisord_nothing_changes(tmp_path: Path) -> None:
    child = run_standin(tmp_path, supervised=False)
    try:
        assert not gone_within(child, 1)
    finally:
        os.kill(child, signal.SIGKILL)


def test_supervisor_dead_before_prctl_is_refused(tmp_path: Path) -> None:
    """The race: supervisord died before the launcher asked for the signal.
    Seen as a parent that is not the pidfile's supervisord."""
    (tmp_path / "supervisord.pid").write_text("1\n")
    code = (
        "import sys, sahara_api_launcher as l\n"
        "try:\n    l.die_with_supervisor(sys.argv[1])\n"
        "except l.StartupError as e:\n    print(e); sys.exit(e.code)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        env={**os.environ, "SUPERVISOR_PROCESS_NAME": "sahara-api", "PYTHONPATH": str(Path(launcher.__file__).parent)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == EX_UNAVAILABLE
    assert out.stdout.strip() == "supervisord died while this program started: start the deployment again"
