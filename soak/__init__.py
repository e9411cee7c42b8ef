"""`make soak`: mixed saharaclient load on the all-in-one deployment while
workers are killed and the API reloaded; then the books are checked (see docs/soak.md)."""

import sys
from pathlib import Path

# harness.py is shared with the integration tests and the benchmark.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
