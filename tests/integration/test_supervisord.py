"""deploy/supervisord.conf as `make run` and the all-in-one container use it:
sahara-api (uWSGI) and the real sahara-engine, stopped cleanly by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from conftest import PYTHON, ROOT, Api, free_port, start

CONF = ROOT / "deploy" / "supervisord.conf"
BIN = Path(PYTHON).parent
# What the real sahara-engine reports (sahara.service.heat.commons.HEAT_ENGINE_VERSION).
REAL_ENGINE = "heat.3.0"


def wait_status(env: dict[str, str], expected: str, timeout: float = 30) -> bool:
    """supervisorctl status until the programs' states read `expected`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(CONF), "status"], env=env, capture_output=True, text=True, timeout=30
        ).stdout
        if " ".join(line.split()[1] for line in out.splitlines()) == expected:
            print(out)
            return True
        time.sleep(0.5)
    return False


def test_supervisord_runs_api_and_engine(base_env, tmp_path: Path, make_cluster, token: str) -> None:
    port = free_port()
    env = {**base_env, "SAHARA_API_PORT": str(port), "SAHARA_API_WORKERS": "2"}
    sup = start("supervisord", [str(BIN / "supervisord"), "-c", str(CONF)], tmp_path / "supervisord.log", env, cls=Api)
    sup.port = port
    try:
        sup.wait_ready()
        assert wait_status(env, "RUNNING RUNNING"), "both programs RUNNING after startsecs"
        assert oct(os.stat(tmp_path / "supervisor.sock").st_mode & 0o777) == "0o700"

        # A scale request round-trips to the real engine over RabbitMQ.
        r = requests.put(
            f"{sup.url}/v2/clusters/{make_cluster()}",
            json={"resize_node_groups": [{"name": "workers", "count": 2}]},
            headers={"X-Auth-Token": token},
            timeout=60,
        )
        assert r.status_code == 400 and REAL_ENGINE in r.text, r.text

        sup.send(signal.SIGTERM)
        assert sup.wait(timeout=90) == 0
        log = sup.log_text()
        assert "stopped: sahara-api (exit status 0)" in log
        assert "stopped: sahara-engine (exit status 0)" in log
        assert sup.leftovers() == []
    finally:
        sup.stop()
