"""sahara-engine as its console script runs it, with Sahara's secrets marked
as such first (sahara_wsgi_entry.hide_secrets): the launcher's engine mode.

    python sahara_api_engine.py --config-file sahara.conf ...
"""

from __future__ import annotations

import sys
from pathlib import Path


def run_engine(argv: list[str]) -> None:
    """sahara-engine, as its console script runs it, after hide_secrets()."""
    sys.argv = [str(Path(sys.executable).parent / "sahara-engine"), *argv]
    from sahara.cli import sahara_engine  # eventlet-patches everything first

    from sahara_wsgi_entry import hide_secrets

    hide_secrets()
    sys.exit(sahara_engine.main())


if __name__ == "__main__":
    run_engine(sys.argv[1:])
