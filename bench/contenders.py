"""The servers compared, started and stopped by the benchmark on the same
stack, with the same sahara.conf and the same paste pipeline
(deploy/api-paste.ini: keystonemiddleware with its memcached token cache)."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

from harness.deploy import ours_env, start_ours, start_upstream
from harness.procs import Api

STARTS = itertools.count()


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
    name = f"{c.name}-{next(STARTS)}"  # its log and config files: a contender starts many times
    if c.kind == "ours":
        # The server alone, as upstream: the exporter (14 MiB PSS, docs/metrics.md) is off.
        env = ours_env(sahara_conf, workdir, SAHARA_METRICS_PORT=0, SAHARA_API_WORKERS=c.workers, **extra_env)
        t0 = time.monotonic()
        api = start_ours("api", env, workdir, name)
    else:
        t0 = time.monotonic()
        api = start_upstream(sahara_conf, c.workers, workdir, name)
    assert isinstance(api, Api)
    return api, t0
