#!/usr/bin/env bash
# `make debug`: the local stack, sahara-engine in the background, and the API
# in debug mode in the foreground (one process, green threads, pdb works
# here, reload on code change). Ctrl-C stops all of it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The knobs (the environment over deploy/defaults.env), checked for debug mode.
knobs=$("$ROOT/.venv/bin/python" "$ROOT/sahara_api_knobs.py" debug)
set -a
eval "$knobs"
set +a
"$ROOT/scripts/stack.sh" up
engine=""
cleanup() {
    if [ -n "$engine" ]; then
        kill -TERM "$engine" 2>/dev/null || true
        wait "$engine" || true
    fi
    "$ROOT/scripts/stack.sh" down
}
trap cleanup EXIT

"$ROOT/.venv/bin/python" "$ROOT/sahara_api_launcher.py" engine >"$ROOT/.stack/logs/sahara-engine.log" 2>&1 &
engine=$!
printf '[debug] sahara-engine log: .stack/logs/sahara-engine.log; API on http://%s:%s\n' "$SAHARA_API_HOST" "$SAHARA_API_PORT"
"$ROOT/.venv/bin/python" "$ROOT/sahara_api_launcher.py" debug || true
