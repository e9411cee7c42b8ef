#!/usr/bin/env bash
# `make run`: bring the local stack up, then run sahara-api + sahara-engine
# under supervisord in the foreground. However it is stopped (Ctrl-C, TERM to
# make or to its whole process group, supervisord killed), the API and the
# engine stop first (in-flight requests finish), then whatever
# scripts/stack.sh started; services found running stay (docs/signals.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TAG='[run]'
# The knobs (the environment over deploy/defaults.env), checked as the
# launcher checks them: a bad one stops here, before anything starts.
# sahara_api_knobs.py needs only Python: a fresh machine installs it first.
[ -x "$ROOT/.venv/bin/python" ] || "$ROOT/scripts/stack.sh" install
knobs=$("$ROOT/.venv/bin/python" "$ROOT/sahara_api_knobs.py" api)
set -a
eval "$knobs"
set +a
# shellcheck source=deploy/all-in-one.sh
source "$ROOT/deploy/all-in-one.sh"
# Before the stack: a leftover deployment still uses it, and holds the port.
stop_leftovers
"$ROOT/scripts/stack.sh" up
trap '"$ROOT/scripts/stack.sh" down' EXIT

printf '[run] Sahara API on http://%s:%s (workers: see the log; Ctrl-C stops)\n' "$SAHARA_API_HOST" "$SAHARA_API_PORT"
if [ "${SAHARA_METRICS_PORT:-0}" != 0 ]; then
    printf '[run] metrics on http://%s:%s/metrics (docs/metrics.md)\n' "$SAHARA_METRICS_HOST" "$SAHARA_METRICS_PORT"
fi
# Returns when supervisord and every process it started are gone.
run_all_in_one "$ROOT/.venv/bin/python" "$ROOT/sahara_api_launcher.py" all-in-one || true
