"""A new user on a fresh Debian 12 (scripts/fresh-check.sh, in a clean
container): the README's prerequisite line and `make run` until
/healthcheck answers 200 and python-saharaclient works, then TERM to make
run's process group leaves no process of the deployment and the port free.
It fails (never skips) when podman cannot run here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.procs import wait_for

# The script bounds itself (FRESH_CHECK_TIMEOUT, default 1200 s); a margin for its clean-up.
BOUND = int(os.environ.get("FRESH_CHECK_TIMEOUT", "1200")) + 120


@pytest.mark.timeout(BOUND + 30)
def test_readme_set_up_run_and_stop_on_fresh_debian_12(fresh_check: tuple[Path, Path]) -> None:
    rc_file, log = fresh_check
    wait_for(lambda: rc_file.exists() and rc_file.read_text().strip(), BOUND, "scripts/fresh-check.sh ended", every=1)
    rc = int(rc_file.read_text())
    out = log.read_text()
    print(f"\n{out}")  # the step times, in CI's log
    assert rc == 0, out.strip().splitlines()[-1] if out.strip() else f"scripts/fresh-check.sh: rc {rc}, no output"
