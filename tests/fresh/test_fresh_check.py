"""A new user on a fresh Debian 12 (scripts/fresh-check.sh, in a clean
container): the README's prerequisite line and `make run` until
/healthcheck answers 200 and python-saharaclient works, then TERM to make
run's process group leaves no process of the deployment and the port free.
It fails (never skips) when podman cannot run here."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

# The script bounds itself (FRESH_CHECK_TIMEOUT, default 1200 s); a margin for its clean-up.
BOUND = int(os.environ.get("FRESH_CHECK_TIMEOUT", "1200")) + 120


@pytest.mark.timeout(BOUND + 30)
def test_readme_set_up_run_and_stop_on_fresh_debian_12(fresh_check: tuple[Path, Path]) -> None:
    rc_file, log = fresh_check
    deadline = time.monotonic() + BOUND
    while not rc_file.exists() or not rc_file.read_text().strip():
        assert time.monotonic() < deadline, f"scripts/fresh-check.sh still running after {BOUND} s"
        time.sleep(1)
    rc = int(rc_file.read_text())
    out = log.read_text()
    print(f"\n{out}")  # the step times, in CI's log
    assert rc == 0, out.strip().splitlines()[-1] if out.strip() else f"scripts/fresh-check.sh: rc {rc}, no output"
