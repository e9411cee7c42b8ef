"""Debian's Prometheus, started on loopback for a test (alert rules, scrapes)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from harness.procs import Proc, free_port, start
from harness.stack import ensure_packages


@dataclass
class Prometheus(Proc):
    """Debian's Prometheus on loopback, scraping the `sahara-api` job's
    targets from a file_sd file that `scrape()` rewrites (seen within ~5 s)."""

    port: int = 0
    sd_file: Path = Path()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def scrape(self, *exporters: str) -> None:
        """Scrape exactly these host:port exporters from now on."""
        tmp = self.sd_file.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": list(exporters)}]))
        tmp.rename(self.sd_file)  # atomic: Prometheus never reads half a file

    def api(self, path: str, **params: str) -> dict:
        r = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        r.raise_for_status()
        return r.json()["data"]

    def query(self, promql: str) -> list[dict]:
        return self.api("query", query=promql)["result"]

    def alerts(self) -> dict[str, str]:
        """Alert name -> `pending` or `firing` (firing if any of its series fires)."""
        states: dict[str, str] = {}
        for a in self.api("alerts")["alerts"]:
            name = a["labels"]["alertname"]
            states[name] = "firing" if "firing" in (a["state"], states.get(name)) else a["state"]
        return states

    def wait(self, promql: str, timeout: float = 30) -> list[dict]:
        """The query's result once it is not empty."""
        deadline = time.monotonic() + timeout
        while not (result := self.query(promql)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{promql} stayed empty for {timeout} s")
            time.sleep(0.2)
        return result


def start_prometheus(
    workdir: Path, rule_files: list[Path] = (), interval: float = 1, targets: tuple[str, ...] = ()
) -> Prometheus:
    """A Prometheus of its own: loopback, a free port, its data in workdir,
    scrapes and rule evaluations every `interval` seconds (15 s/1 m in production)."""
    ensure_packages("prometheus")  # brings promtool too
    workdir.mkdir(parents=True, exist_ok=True)
    port, sd_file = free_port(), workdir / "targets.json"
    every = f"{int(interval * 1000)}ms"
    config = {
        "global": {"scrape_interval": every, "evaluation_interval": every, "scrape_timeout": every},
        "rule_files": [str(f) for f in rule_files],
        "scrape_configs": [{"job_name": "sahara-api", "file_sd_configs": [{"files": [str(sd_file)]}]}],
    }
    (workdir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    argv = ["prometheus", f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}"]
    argv += [f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    sd_file.write_text(json.dumps([{"targets": list(targets)}]))
    prom = start("prometheus", argv, workdir / "prometheus.log", dict(os.environ), cls=Prometheus, port=port)
    prom.sd_file = sd_file
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{prom.url}/-/ready", timeout=2).status_code == 200:
                return prom
        except requests.RequestException:
            pass
        if prom.popen.poll() is not None or time.monotonic() > deadline:
            prom.stop()
            raise RuntimeError(f"Prometheus did not start:\n{prom.log_text()[-3000:]}")
        time.sleep(0.1)
