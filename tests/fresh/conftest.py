"""`make fresh-check` inside `make test`: scripts/fresh-check.sh starts as
soon as collection ends, niced, so its ~6 minutes in a clean container
overlap the other tests instead of adding to them (on 2 cores they keep the
CPU they need; the check takes what is left), and its test runs last, to
collect the result. A run interrupted early still removes its container."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SCRIPT = HERE.parents[1] / "scripts" / "fresh-check.sh"
RUN = pytest.StashKey[tuple[subprocess.Popen, Path]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if Path(item.fspath).parent == HERE]
    if not ours or RUN in config.stash:
        return
    items[:] = [item for item in items if item not in ours] + ours
    log = Path(tempfile.mkstemp(prefix="fresh-check-", suffix=".log")[1])
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["nice", "-n", "10", str(SCRIPT)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    config.stash[RUN] = (proc, log)


def pytest_unconfigure(config: pytest.Config) -> None:
    """TERM (the script then removes its container) if the session ends first."""
    proc, _ = config.stash.get(RUN, (None, None))
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.fixture
def fresh_check(request: pytest.FixtureRequest) -> tuple[subprocess.Popen, Path]:
    return request.config.stash[RUN]
