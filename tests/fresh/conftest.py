"""`make fresh-check` inside `make test`: scripts/fresh-check.sh starts as
soon as collection ends, niced, so its ~6 minutes in a clean container
overlap the other tests instead of adding to them (on 2 cores they keep the
CPU they need; the check takes what is left), and its test runs last, to
collect the result. With `-n N` every worker collects: the first one starts
the check, in the run's shared directory (tests/conftest.py), whose end
stops it (TERM: the script then removes its container) if it still runs."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SCRIPT = HERE.parents[1] / "scripts" / "fresh-check.sh"


def shared() -> Path:
    return Path(os.environ["SAHARA_TESTS_SHARED_DIR"])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if Path(item.fspath).parent == HERE]
    if not ours:
        return
    items[:] = [item for item in items if item not in ours] + ours
    with (shared() / "fresh-check.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (shared() / "fresh-check.pgid").exists():
            return
        with (shared() / "fresh-check.log").open("w") as out:
            # The exit status goes to a file: the worker that runs the test may not be this one.
            wrapped = 'nice -n 10 "$0"; echo $? >"$1"'
            argv = ["bash", "-c", wrapped, str(SCRIPT), str(shared() / "fresh-check.rc")]
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        (shared() / "fresh-check.pgid").write_text(str(proc.pid))


@pytest.fixture
def fresh_check() -> tuple[Path, Path]:
    """(rc file, log) of the check this run started."""
    return shared() / "fresh-check.rc", shared() / "fresh-check.log"
