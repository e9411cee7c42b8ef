#!/usr/bin/env bash
# `make run`: bring the local stack up, then run sahara-api + sahara-engine
# under supervisord in the foreground. Ctrl-C (or SIGTERM) stops supervisord
# and then whatever scripts/stack.sh started; services found running stay.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/stack.sh" up
trap '"$ROOT/scripts/stack.sh" down' EXIT

printf '[run] Sahara API on http://%s:%s (workers: see the log; Ctrl-C stops)\n' "$SAHARA_API_HOST" "$SAHARA_API_PORT"
if [ "${SAHARA_METRICS_PORT:-0}" != 0 ]; then
    printf '[run] metrics on http://%s:%s/metrics (docs/metrics.md)\n' "$SAHARA_METRICS_HOST" "$SAHARA_METRICS_PORT"
fi
"$ROOT/.venv/bin/python" "$ROOT/sahara_api_launcher.py" all-in-one &
supervisord=$!
# Forward TERM (Ctrl-C already reaches supervisord through the terminal).
trap 'kill -TERM "$supervisord" 2>/dev/null || true' TERM INT
# The first wait returns early when a trap fires; the second waits for the stop.
wait "$supervisord" || wait "$supervisord" || true
