#!/usr/bin/env bash
# `make fresh-check`: what a new user does, on a fresh Debian 12, every time.
# In a clean container made from the project's own debootstrap base (no
# package of this machine, no pip cache, no venv) with a network namespace of
# its own (this host's MariaDB, RabbitMQ, memcached, Keystone stay out of it):
# copy this checkout in (tracked + untracked-not-ignored files), run the
# README's prerequisite line, then `make run` in its own process group until
# /healthcheck answers 200 and python-saharaclient lists the plugins with the
# openrc it wrote; then TERM that process group and check that no process of
# the deployment is left and the API port is free. Prints the time of each
# step and one verdict line; on failure, the tail of the log that says why.
#
#   scripts/fresh-check.sh            on the host (installs podman, runc, ...)
#   scripts/fresh-check.sh inside     in the container (what the host runs)
#
# FRESH_CHECK_TIMEOUT bounds the whole run (s). CA_BUNDLE (default: this
# machine's) is mounted read-only for pip, for HTTPS through a proxy with its
# own CA; it never becomes part of the container's trust store. podman passes
# the host's *_proxy variables on by itself (--http-proxy); apt needs nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '[fresh-check] %s\n' "$*"; }
fail() { printf '[fresh-check] FAILED: %s\n' "$*" >&2; exit 1; }

host() {
    local timeout=${FRESH_CHECK_TIMEOUT:-1200}
    local ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
    # containernetworking-plugins + iptables: podman's default bridge network
    # (a network namespace of its own); runc: crun fails here (DESIGN.md).
    local packages=(podman runc containernetworking-plugins iptables debootstrap)
    "$ROOT/scripts/stack.sh" packages "${packages[@]}" || fail "cannot install ${packages[*]} (above)"
    timeout 120 podman info >/dev/null 2>&1 ||
        fail "podman cannot run here: $(timeout 120 podman info 2>&1 | tail -1)"
    git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 ||
        fail "$ROOT is not a git checkout: the check copies what a clone has (git ls-files)"
    timeout 600 "$ROOT/scripts/base-image.sh" >/dev/null ||
        fail "cannot make the Debian base image (scripts/base-image.sh)"
    local base
    base=$(awk '/^FROM /{print $2; exit}' "$ROOT/deploy/Dockerfile")

    local mounts=()
    NAME=fresh-check-$$
    [ -s "$ca" ] && mounts=(-v "$ca:/run/host-ca.crt:ro" -e PIP_CERT=/run/host-ca.crt)
    trap 'podman rm -f -t 0 "$NAME" >/dev/null 2>&1 || true' EXIT
    trap 'exit 143' TERM INT
    # --ulimit: runc cannot raise them above this host's hard limits.
    podman --runtime runc create --name "$NAME" --pull=never \
        --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 "${mounts[@]}" \
        -w /src "$base" bash /src/scripts/fresh-check.sh inside >/dev/null ||
        fail "podman cannot create a container from $base"
    # The checkout as a clone would have it (plus what is not committed yet);
    # never .venv or .stack, whatever .gitignore says.
    (cd "$ROOT" && git ls-files -z -co --exclude-standard) |
        grep -zv -e '^\.venv' -e '^\.stack' |
        tar -C "$ROOT" --null -T - --ignore-failed-read --transform 's,^,src/,' -c 2>/dev/null |
        podman cp - "$NAME:/" || fail "cannot copy the checkout into the container"
    say "container $NAME from $base (own network namespace), checkout copied; bound: $timeout s"
    local rc=0
    # In the background: a TERM to this script is acted on (container removed) at once.
    timeout -k 10 "$timeout" podman start -a "$NAME" &
    wait $! || rc=$?
    case $rc in
        0 | 1) return "$rc" ;;  # the check's own verdict line is above
        124) fail "the whole check took more than $timeout s (FRESH_CHECK_TIMEOUT)" ;;
        *) fail "podman cannot run the container (exit $rc, podman's message above)" ;;
    esac
}

# --- in the container, as root, at /src ---------------------------------

T0=$SECONDS
LOG=/tmp/make-run.log
STEPS=()

mark() { STEPS+=("$1 $2 s"); say "$1: $2 s"; }

# make run's own progress lines (and supervisord's stops), as they come, with
# the time since the start: where a slow step spends it, the stop order.
SHOWN=0
progress() {
    local line n=0
    while IFS= read -r line; do
        n=$((n + 1))
        [ "$n" -le "$SHOWN" ] || say "  +$((SECONDS - T0)) s $line"
    done < <(grep -E '^\[(stack|run)\] |INFO stopped: ' "$LOG" 2>/dev/null)
    SHOWN=$n
}

# The tail of a log, then the one line saying what failed.
die_with() {  # die_with LOGFILE MESSAGE
    [ -f "$1" ] && { say "--- tail of $1"; tail -n 25 "$1" | cut -c1-300 | sed 's/^/    /'; } >&2
    fail "$2 ($((SECONDS - T0)) s in)"
}

# wait_for SECONDS WHAT LOG CMD...: until CMD succeeds; fail if make run died.
wait_for() {
    local bound=$1 limit=$((SECONDS + $1)) what=$2 log=$3
    shift 3
    until progress && "$@"; do
        [ "$SECONDS" -lt "$limit" ] || die_with "$log" "$what: not done within $bound s"
        alive "$RUN" || die_with "$log" "make run exited before: $what"
        sleep 0.5
    done
}

alive() { [ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
logged() { grep -qF -- "$1" "$LOG"; }

healthcheck_200() {  # bash's /dev/tcp: a fresh machine has no curl
    local status
    # shellcheck disable=SC2016  # $1 expands in that bash
    status=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
        printf "GET /healthcheck HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 && head -1 <&3' _ "$SAHARA_API_PORT" 2>/dev/null) || return 1
    [[ $status == "HTTP/1."?" 200"* ]]
}

# What make run left (not zombies): "PID name" lines. In this container
# nothing else runs, so that is every process outside this script's session:
# the harness's walk (harness/procs.py, the tests' "nothing left"), from the
# venv make run made.
leftovers() { .venv/bin/python -m harness.procs leftovers; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$SAHARA_API_PORT") 2>/dev/null; }

inside() {
    local SAHARA_API_PORT  # asked of sahara_api_knobs.py once make run has made the venv
    # The README's prerequisite line, as written there.
    local prereq
    prereq=$(sed -n 's/^    \(apt-get update && apt-get install .*\)$/\1/p' README.md | head -1)
    [ -n "$prereq" ] || fail "README.md has no 'apt-get update && apt-get install ...' prerequisite line"
    say "prerequisite (README): $prereq"
    local t=$SECONDS
    timeout 300 bash -c "DEBIAN_FRONTEND=noninteractive $prereq" >/tmp/prereq.log 2>&1 ||
        die_with /tmp/prereq.log "the README's prerequisite line failed"
    mark prerequisites $((SECONDS - t))

    # make run as a terminal starts it: a process group of its own.
    t=$SECONDS
    setsid make run >"$LOG" 2>&1 </dev/null &
    RUN=$!
    wait_for 300 "apt (Debian packages)" "$LOG" logged "[stack] installing Python packages"
    mark apt $((SECONDS - t))
    t=$SECONDS
    wait_for 600 "venv (pip install)" "$LOG" logged "[stack] MariaDB:"
    logged "rebuilding it without pip's cache" &&
        die_with "$LOG" "a fresh set-up compiled uWSGI without a feature uwsgi.ini uses (scripts/stack.sh's APT_PACKAGES)"
    mark venv $((SECONDS - t))
    t=$SECONDS
    wait_for 300 "services (MariaDB, RabbitMQ, memcached, Keystone, db schema)" "$LOG" logged "[run] Sahara API on"
    mark services $((SECONDS - t))
    SAHARA_API_PORT=$(.venv/bin/python sahara_api_knobs.py show | sed -n 's/^SAHARA_API_PORT=//p')
    t=$SECONDS
    wait_for 120 "/healthcheck 200 on :$SAHARA_API_PORT" "$LOG" healthcheck_200
    mark "first 200" $((SECONDS - t))

    t=$SECONDS
    # shellcheck source=/dev/null
    source /src/openrc
    timeout 120 .venv/bin/openstack dataprocessing plugin list -f value -c Name >/tmp/client.log 2>&1 ||
        die_with /tmp/client.log "python-saharaclient: openstack dataprocessing plugin list failed"
    grep -qx fake /tmp/client.log || die_with /tmp/client.log "python-saharaclient: the fake plugin is not listed"
    mark "saharaclient plugin list" $((SECONDS - t))

    # TERM to the whole process group: what timeout, a closing terminal or a
    # service manager does.
    t=$SECONDS
    kill -TERM -- "-$RUN"
    local limit=$((SECONDS + 150))
    while alive "$RUN"; do
        [ "$SECONDS" -lt "$limit" ] || die_with "$LOG" "make run still running 150 s after TERM"
        progress
        sleep 0.5
    done
    wait "$RUN" || true
    progress
    limit=$((SECONDS + 30))
    while [ -n "$(leftovers)" ] || ! port_free; do
        [ "$SECONDS" -lt "$limit" ] || break
        sleep 0.5
    done
    local left
    left=$(leftovers | tr '\n' ' ') || die_with "$LOG" "cannot list the processes left (python -m harness.procs leftovers)"
    [ -z "$left" ] || die_with "$LOG" "left after TERM to make run's process group: $left"
    port_free || die_with "$LOG" "port $SAHARA_API_PORT still taken after the stop"
    mark stop $((SECONDS - t))
    local steps
    printf -v steps '%s, ' "${STEPS[@]}"
    say "PASSED in $((SECONDS - T0)) s (${steps%, })"
}

case "${1:-}" in
    inside) inside ;;
    "") host ;;
    *) fail "usage: $0 [inside]" ;;
esac
