"""Debug mode (`make debug`): one process, green threads, pdb in the
terminal, reload on code change. Driven through a real terminal (pexpect)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pexpect
import requests

from harness import ROOT
from harness.deploy import LAUNCHER, PYTHON
from harness.procs import free_port

EX_CONFIG = 78
# A paste filter written by the test: breakpoint() in a request path, and a
# header telling which version of the code answered.
FILTER = """
def filter_factory(global_conf, **local_conf):
    def wrap(app):
        def breaking(environ, start_response):
            if "HTTP_X_BREAK" in environ:
                breakpoint()
            def versioned(status, headers, exc_info=None):
                return start_response(status, headers + [("X-Code-Version", "{version}")], exc_info)
            return app(environ, versioned)
        return breaking
    return wrap
"""


def test_debug_mode_refuses_several_workers(launch) -> None:
    proc = launch("debug", wait=False, SAHARA_API_WORKERS=4)
    assert proc.wait(timeout=60) == EX_CONFIG
    out = proc.log_text().strip()
    print(f"\n{out}")
    assert out.startswith("sahara-api: ERROR: SAHARA_API_WORKERS='4': debug mode runs one process")


def test_pdb_and_reload_in_a_terminal(base_env: dict[str, str], sahara_conf: Path, tmp_path: Path, token: str) -> None:
    module = tmp_path / "debug_filter.py"
    module.write_text(FILTER.format(version="1"))
    paste = (ROOT / "deploy" / "api-paste.ini").read_text()
    paste = paste.replace("pipeline = cors", "pipeline = debug_filter cors")
    paste += "\n[filter:debug_filter]\npaste.filter_factory = debug_filter:filter_factory\n"
    (tmp_path / "api-paste.ini").write_text(paste)
    (tmp_path / "paste.conf").write_text(f"[DEFAULT]\napi_paste_config = {tmp_path / 'api-paste.ini'}\n")

    port = free_port()
    env = {
        **base_env,
        "SAHARA_API_PORT": str(port),
        "SAHARA_CONFIG_FILES": f"{sahara_conf}:{tmp_path / 'paste.conf'}",
        "PYTHONPATH": str(tmp_path),
    }
    url = f"http://127.0.0.1:{port}/v2/plugins"
    headers = {"X-Auth-Token": token}
    term = pexpect.spawn(PYTHON, [str(LAUNCHER), "debug"], env=env, cwd=str(ROOT), encoding="utf-8", timeout=60)
    term.logfile_read = sys.stdout
    try:
        term.expect("wsgi starting up")
        answers: list[requests.Response] = []
        breaking = {**headers, "X-Break": "1"}
        request = threading.Thread(target=lambda: answers.append(requests.get(url, headers=breaking)))
        request.start()
        term.expect_exact("(Pdb) ")
        term.sendline("p environ['PATH_INFO']")
        term.expect_exact("'/v2/plugins'")
        term.sendline("c")
        term.expect('"GET /v2/plugins HTTP/1.1" 200')  # reading the terminal also keeps its buffer from filling
        request.join(timeout=60)
        assert answers and answers[0].status_code == 200
        assert answers[0].headers["X-Code-Version"] == "1"

        # A code change, rewritten until hupper reacts (it may not watch the file yet).
        deadline, version, reloaded = time.monotonic() + 90, "1", False
        while version != "2":
            assert time.monotonic() < deadline, "the changed code was not reloaded"
            if not reloaded:
                module.write_text(FILTER.format(version="2"))
            for _ in range(10):
                reloaded |= term.expect(["changed; reloading", pexpect.TIMEOUT], timeout=0.2) == 0
                try:
                    version = requests.get(url, headers=headers, timeout=5).headers.get("X-Code-Version", "")
                except requests.RequestException:
                    continue
                if version == "2":
                    break
        assert reloaded, "hupper logged the reload"
    finally:
        term.kill(15)
        term.expect(pexpect.EOF)
        term.close()
    print(f"\nexit status {term.exitstatus}, signal {term.signalstatus}")
