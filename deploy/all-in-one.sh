# shellcheck shell=bash
# Sourced by scripts/run.sh (`make run`) and deploy/container-entrypoint.sh
# (all-in-one): runs the launcher's all-in-one mode (supervisord: sahara-api
# and sahara-engine) in a session of its own, so every process of the
# deployment is found by its session id, whoever sends which signal
# (docs/signals.md, "Stopping make run"):
#   - TERM, INT or HUP to the caller: TERM to supervisord, which stops the API
#     and the engine gracefully (Ctrl-C reaches only the caller: the terminal
#     does not know the new session); the caller killed: TERM to supervisord;
#   - run_all_in_one returns only when no process of that session is left.
#     If supervisord was SIGKILLed, its programs got TERM from the kernel (the
#     launcher's PR_SET_PDEATHSIG) and are waited for; what is left after
#     SAHARA_API_STOP_TIMEOUT gets TERM, and SIGKILL 10 s later;
#   - stop_leftovers stops what an earlier run left (its supervisord.pid in
#     SAHARA_RUN_DIR names the session), with one line saying so.
# The kernel never reuses a pid that is still a session id, so a session id
# names only that deployment while any of its processes lives.

TAG=${TAG:-[all-in-one]}

# shellcheck source=deploy/proc.sh
source "${BASH_SOURCE[0]%/*}/proc.sh"

wait_session() {  # wait_session SID SECONDS: until the session is empty; 1 if not in time
    local deadline=$((SECONDS + $2))
    while [ -n "$(session_pids "$1")" ]; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

stop_session() {  # stop_session SID WAIT GRACE: wait up to WAIT s, TERM its programs, KILL after GRACE s more
    local pid
    wait_session "$1" "$2" && return 0
    # The programs supervisord started are process group leaders; their
    # children (uWSGI workers) follow them.
    for pid in $(session_pids "$1"); do
        [ "$(stat_field "$pid" 2)" != "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
    done
    wait_session "$1" "$3" && return 0
    printf '%s killing what did not stop within %s s: pids %s\n' "$TAG" "$(($2 + $3))" "$(session_pids "$1" | tr '\n' ' ')"
    for pid in $(session_pids "$1"); do kill -KILL "$pid" 2>/dev/null || true; done
    wait_session "$1" 10 || true
}

stop_leftovers() {  # a deployment an earlier run left behind: stop it before starting
    local pidfile=$SAHARA_RUN_DIR/supervisord.pid sid left
    sid=$(cat "$pidfile" 2>/dev/null) || return 0
    if [ -n "$(stat_field "$sid" 0 2>/dev/null | tr -d Z)" ]; then
        # That pid lives: the supervisord of a run still going, or a reused pid.
        if [ "$(stat_field "$sid" 3)" = "$sid" ] && tr '\0' ' ' <"/proc/$sid/cmdline" | grep -q supervisord; then
            printf '%s ERROR: a deployment is already running here (supervisord pid %s, %s): stop it first (Ctrl-C in its terminal, or kill -TERM %s)\n' \
                "$TAG" "$sid" "$pidfile" "$sid" >&2
            return 1
        fi
        rm -f "$pidfile"
        return 0
    fi
    # Its supervisord is gone; a session id is not reused while any process
    # of the session lives, so these are what it left.
    left=$(session_pids "$sid" | wc -l)
    if [ "$left" -gt 0 ]; then
        printf '%s stopping %s processes an earlier run left (session of supervisord pid %s, %s): up to %s s\n' \
            "$TAG" "$left" "$sid" "$pidfile" "$((5 + SAHARA_API_STOP_TIMEOUT))"
        # They got TERM when their supervisord died: give them a moment first.
        stop_session "$sid" 5 "$SAHARA_API_STOP_TIMEOUT"
    fi
    rm -f "$pidfile"
}

run_all_in_one() {  # run_all_in_one COMMAND...: run it in a new session; return its status when all of it is gone
    local sup rc=0
    # If the caller itself is killed (kill -9 of make's whole group), TERM
    # supervisord (a graceful stop) rather than leave it running.
    setsid setpriv --pdeathsig TERM -- "$@" &
    sup=$!
    # shellcheck disable=SC2064  # $sup is known now
    trap "kill -TERM $sup 2>/dev/null || true" TERM INT HUP
    # wait returns early when a trapped signal arrives: wait again until supervisord is gone.
    while kill -0 "$sup" 2>/dev/null; do wait "$sup" || true; done
    wait "$sup" || rc=$?
    stop_session "$sup" "$SAHARA_API_STOP_TIMEOUT" 10
    return "$rc"
}
