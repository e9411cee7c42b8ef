#!/usr/bin/env bash
# `make cluster-test`: build or reuse the cluster's binaries, bring the
# single-node Kubernetes up (scripts/cluster.sh), run the chart's checks on it
# (cluster/, pytest), and tear everything down whatever happened, then check
# that nothing of the run is left. Each step prints its time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

t0=$SECONDS
# Another run's cluster (or an interrupted one's) is not this run's to tear
# down: checked before the trap that tears down.
scripts/cluster.sh free
finish() {
    local rc=$?
    trap - EXIT INT TERM
    scripts/cluster.sh down || rc=1
    scripts/cluster.sh leftovers || rc=1
    echo "[cluster-test] $([ "$rc" -eq 0 ] && echo PASSED || echo "FAILED (rc $rc)") in $((SECONDS - t0)) s"
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

scripts/cluster.sh up
# -s: each check's figures as it runs; -p no:cacheprovider: no .pytest_cache
# from a root run; --timeout: an install waits for the db-sync hook and the
# pods' start-up on a 2-core machine.
.venv/bin/pytest cluster -s -p no:cacheprovider --timeout=900 "$@"
