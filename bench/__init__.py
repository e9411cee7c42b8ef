"""`make bench`: our uWSGI deployment against Sahara's own `sahara-api`
launcher, on the same local stack (see docs/benchmarks.md)."""

import sys
from pathlib import Path

# harness.py, workload.py, slow_engine.py and make_cluster.py are shared with the integration tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
