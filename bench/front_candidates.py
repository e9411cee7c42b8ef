"""The candidates for the buffering front of issue 14, measured with the same
probes (harness/hostile.py) on loopback, each in front of the same uWSGI
(4 workers): `direct` and `nginx` as SAHARA_API_FRONT makes them (nginx run
by uWSGI's master, deploy/nginx.conf), haproxy from Debian and uWSGI's HTTP
router each as a process of its own in front of `direct` (haproxy over HTTP,
the router over a uwsgi-protocol unix socket).
The figures are in docs/tuning.md ("The HTTP front").

    .venv/bin/python -m bench.front_candidates [direct,nginx,haproxy,router]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import measure
from bench.contenders import Contender, launch
from bench.project import Project, on_the_stack
from harness import hostile, startup
from harness.figures import cpu_seconds, loadavg, pss_mib
from harness.procs import Proc, free_port, start, tree, uwsgi_master
from sahara_api_knobs import FRONTS

LIMIT = 10 * 2**20
HAPROXY = """global
  maxconn 4096
  tune.bufsize 65536
  tune.maxrewrite 1024
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 100s
  timeout http-request 10s
  timeout http-keep-alive 75s
  option http-buffer-request
frontend api
  bind 127.0.0.1:{port}
  http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt {limit} }}
  default_backend uwsgi
backend uwsgi
  server s1 127.0.0.1:{back}
"""


def start_front(kind: str, run: Path, port: int, back: int, workdir: Path) -> Proc:
    if kind == "haproxy":
        (run / "haproxy.cfg").write_text(HAPROXY.format(port=port, back=back, limit=LIMIT))
        argv = ["haproxy", "-db", "-f", str(run / "haproxy.cfg")]
    else:  # uWSGI's HTTP router as its own process, talking uwsgi to the workers' socket
        uwsgi = str(Path(sys.executable).parent / "uwsgi")
        argv = [uwsgi, "--master", "--http", f"127.0.0.1:{port}", "--http-to", str(run / "uwsgi.sock")]
        argv += ["--buffer-size", "65535", "--http-timeout", "100", "--add-header", "Connection: close"]
    proc = start(f"front-{kind}", argv, workdir / f"front-{kind}.log", dict(os.environ))
    startup.listening(port, time.monotonic(), proc)
    return proc


def candidate(kind: str, project: Project, workdir: Path) -> dict:
    run = workdir / kind
    run.mkdir()
    env_extra = {"SAHARA_RUN_DIR": str(run), "SAHARA_API_FRONT": kind if kind in FRONTS else "direct"}
    if kind == "router":  # uWSGI also reads UWSGI_<OPTION>: a uwsgi-protocol socket for the router
        env_extra["UWSGI_SOCKET"] = str(run / "uwsgi.sock")
    api, _ = launch(Contender("ours", 4), project.conf, workdir, env_extra)
    front = None
    try:
        api.wait_ready()
        port = free_port() if kind not in FRONTS else api.port
        if kind not in FRONTS:
            front = start_front(kind, run, port, api.port, workdir)
        url, token = f"http://127.0.0.1:{port}", project.token
        startup.first_200(f"{url}/v2/plugins", token, time.monotonic(), api)
        out: dict = {"front": kind}
        out["slowloris"] = hostile.slowloris(port, url, token)
        out["heads"] = hostile.heads(port)
        out["bodies"] = hostile.bodies(port, LIMIT, token)
        out["slow_bodies"] = hostile.slow_bodies(port, run)
        out["keepalive"] = hostile.idle_keepalive(port, url, token)
        out["hup"] = vars(hostile.hup(url, token, api.pid))
        api.wait_ready()
        out["kill_worker"] = vars(hostile.kill_worker(url, token, uwsgi_master(api.pid), run))
        time.sleep(2)
        procs = tree(api.pid) + (tree(front.pid) if front else [])
        measure.wrk(f"{url}/v2/plugins", token, 16, 5, True, api)  # warm-up
        cpu0 = cpu_seconds(procs)
        r = measure.wrk(f"{url}/v2/plugins", token, 16, 15, True, api)
        cpu1 = cpu_seconds(procs)
        out["cost"] = {
            "rps": r["rps"],
            "p99_ms": r["p99_ms"],
            "errors": r["errors"],
            "cpu_ms_per_req": round(1000 * (cpu1 - cpu0) / max(r["requests"], 1), 3),
            "pss_api_mib": pss_mib(tree(api.pid)),
            "pss_front_mib": pss_mib(tree(front.pid)) if front else 0.0,
            "loadavg": loadavg(),
        }
        return out
    finally:
        if front:
            front.stop()
        api.stop()


def main() -> None:
    kinds = (sys.argv[1] if len(sys.argv) > 1 else "direct,nginx,haproxy,router").split(",")
    with tempfile.TemporaryDirectory(prefix="sahara-fronts-") as tmp, on_the_stack(Path(tmp), 1) as project:
        for kind in kinds:
            result = candidate(kind, project, Path(tmp))
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
