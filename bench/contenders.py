"""The servers compared, started and stopped by the benchmark on the same
stack, with the same sahara.conf and the same paste pipeline
(deploy/api-paste.ini: keystonemiddleware with its memcached token cache)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness import ROOT
from harness.procs import Api, free_port, start

VENV_BIN = Path(sys.executable).parent
PASTE = ROOT / "deploy" / "api-paste.ini"


@dataclass(frozen=True)
class Contender:
    """`ours-N`: the launcher and uWSGI with deploy/defaults.env as shipped (plus
    BENCH_OURS_ENV); `upstream-N`: Sahara's own `sahara-api` with api_workers=N."""

    kind: str  # "ours" (launcher + uWSGI) or "upstream" (sahara-api, oslo.service ProcessLauncher)
    workers: int  # SAHARA_API_WORKERS / [DEFAULT] api_workers

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.workers}"

    @property
    def serving(self) -> int:
        """Processes that answer requests: upstream's parent serves too."""
        return self.workers + 1 if self.kind == "upstream" else self.workers

    def label(self) -> str:
        what = "uWSGI" if self.kind == "ours" else "sahara-api"
        return f"{what}, {self.workers} worker{'s' if self.workers > 1 else ''} ({self.serving} serving)"


def parse(names: str) -> list[Contender]:
    out = []
    for name in filter(None, (x.strip() for x in names.split(","))):
        kind, _, workers = name.rpartition("-")
        if kind not in ("ours", "upstream") or not workers.isdigit():
            raise SystemExit(f"bad contender {name!r}: use ours-N or upstream-N (BENCH_OURS_ENV for other settings)")
        out.append(Contender(kind, int(workers)))
    return out


def launch(c: Contender, sahara_conf: Path, workdir: Path, extra_env: dict[str, str]) -> tuple[Api, float]:
    """Start the contender; returns it and the monotonic time it was started at."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAHARA_", "UWSGI_"))}
    log = workdir / f"{c.name}-{port}.log"
    if c.kind == "ours":
        env |= {
            "SAHARA_CONFIG_FILES": str(sahara_conf),
            "SAHARA_API_PORT": str(port),
            # The server alone, as upstream: the exporter (14 MiB PSS, docs/metrics.md) is off.
            "SAHARA_METRICS_PORT": "0",
            "SAHARA_API_WORKERS": str(c.workers),
            "SAHARA_API_DRAIN_FILE": str(workdir / "drain"),
            "SAHARA_RUN_DIR": str(workdir),
            "VIRTUAL_ENV": str(VENV_BIN.parent),
            **extra_env,
        }
        argv = [sys.executable, str(ROOT / "sahara_api_launcher.py"), "api"]
    else:
        own = workdir / f"{c.name}.conf"
        own.write_text(
            "[DEFAULT]\n"
            "host = 127.0.0.1\n"
            f"port = {port}\n"
            f"api_workers = {c.workers}\n"
            "# Same pipeline as ours: /healthcheck outside auth, keystonemiddleware + memcached.\n"
            f"api_paste_config = {PASTE}\n"
            "[healthcheck]\n"
            f"disable_by_file_path = {workdir / 'drain'}\n"
        )
        argv = [str(VENV_BIN / "sahara-api"), "--config-file", str(sahara_conf), "--config-file", str(own)]
    t0 = time.monotonic()
    api = start(c.name, argv, log, env, cls=Api, port=port, environ=env)
    assert isinstance(api, Api)
    return api, t0
