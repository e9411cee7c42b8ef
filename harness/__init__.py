"""The harness the tests, the benchmark and the soak share (docs/harness.md):
the local stack, our deployment and upstream's, clients (load, hostile),
process-tree checks. Imports go one way: product <- harness <- tests, bench, soak."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
