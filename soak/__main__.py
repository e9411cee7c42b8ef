"""make soak: the all-in-one deployment under mixed saharaclient load for
SOAK_SECONDS while a worker is killed every 20 s and the API reloaded every
60 s; writes results.json, pss.png and soak.md, exits 1 if a check failed.

Knobs (environment):
  SOAK_SECONDS=600   how long the load and the chaos run
  SOAK_OUT=DIR       where soak.md and soak/ (results.json, pss.png) go (default docs/)
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from harness import ROOT
from harness.stack import Stack, ensure_project, keystone_session, read_openrc
from soak import report
from soak.run import PROJECT, Plan, soak

LOG = ROOT / ".soak" / "all-in-one.log"  # supervisord, uWSGI and engine output of the last run


def say(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main() -> int:
    plan = replace(Plan(), seconds=float(os.environ.get("SOAK_SECONDS") or Plan.seconds))
    out = Path(os.environ.get("SOAK_OUT") or ROOT / "docs").resolve()
    say("stack: scripts/stack.sh up (reuses running services)")
    stack = Stack("soak")  # down at the end stops only what this run started
    with (
        tempfile.TemporaryDirectory(prefix="sahara-soak-") as tmp,
        stack.running(quiet=True),
        stack.vhost("sahara-soak", Path(tmp)) as conf,  # no other engine answers our RPCs
    ):
        openrc = read_openrc()
        project_id = ensure_project(openrc, PROJECT, "make soak")
        try:
            results = soak(conf, Path(tmp), project_id, lambda: keystone_session(openrc, PROJECT), plan, say)
        finally:  # the deployment's log outlives the temporary directory
            if (Path(tmp) / "all-in-one.log").exists():
                LOG.parent.mkdir(exist_ok=True)
                shutil.copyfile(Path(tmp) / "all-in-one.log", LOG)
    report.write(results, out)
    for check, ok in results["checks"].items():
        say(f"{'PASS' if ok else 'FAIL'}: {check}")
    say(f"report: {out / 'soak.md'}; the deployment's log: {LOG}")
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
