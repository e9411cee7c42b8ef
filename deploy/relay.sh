#!/usr/bin/env bash
# The API's signal relay with the nginx front (SAHARA_API_FRONT=nginx;
# docs/signals.md): the launcher execs it in its place, so it gets every
# signal meant for the API (supervisord, tini, a pod, a killed supervisord's
# parent-death TERM), and it runs uWSGI, its argv, as its only child.
#
# Why: uWSGI's own TERM stops the workers first and its daemons last, so
# nginx would go on accepting requests and receiving uploads while the
# workers go, and cut them. Here a stop is front first:
#   TERM      QUIT to nginx: it closes its listener and finishes every request
#             it accepted, bodies still uploading included, against workers
#             that are still running (bounded by worker_shutdown_timeout,
#             nginx.conf); once nginx is gone, TERM to uWSGI: its graceful
#             stop, the workers idle by then; exit with uWSGI's status;
#   INT QUIT  fast stop: TERM to nginx (it closes every connection at once),
#             then the same signal to uWSGI (its workers are killed);
#   HUP USR1 USR2  passed on to uWSGI as they are (HUP: its graceful reload,
#             which keeps nginx and its client connections).
# Before stopping anything it creates SAHARA_RUN_DIR/front.stop, which
# uwsgi.ini's nginx line checks, so uWSGI's master does not start a new
# nginx meanwhile. It only orders a stop: uWSGI's master still starts,
# watches and restarts nginx, the workers and the metrics exporter.
# bash rather than Python because it stays resident: 0.5 MiB PSS, not 4.
set -euo pipefail

run_dir=$SAHARA_RUN_DIR
stopping=

alive() {  # alive PID: a process that has not exited (uWSGI reaps nginx, so a zombie is gone)
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

front_pid() {  # nginx's master, from its pidfile (nginx.conf)
    local pid
    read -r pid 2>/dev/null <"$run_dir/nginx.pid" && alive "$pid" && echo "$pid"
}

wait_gone() {  # wait_gone PID SECONDS
    local deadline=$((SECONDS + $2))
    while alive "$1" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
}

# shellcheck disable=SC2317  # run by the traps below
stop() {  # stop SIGNAL: TERM front first, INT or QUIT at once
    local front
    [ -z "$stopping" ] || return 0
    stopping=$1
    : >"$run_dir/front.stop"
    front=$(front_pid) || front=
    if [ -n "$front" ] && [ "$1" = TERM ]; then
        kill -QUIT "$front" 2>/dev/null || true
        # nginx ends its own wait (worker_shutdown_timeout); this bound is for a hung one.
        wait_gone "$front" "$SAHARA_API_STOP_TIMEOUT"
    elif [ -n "$front" ]; then  # nginx's fast stop: its clients see their connections close, not a 502
        kill -TERM "$front" 2>/dev/null || true
        wait_gone "$front" 5
    fi
    kill -"$1" "$uwsgi" 2>/dev/null || true
}

# A background job of a script ignores INT and QUIT: uWSGI gets them at their defaults.
# setpriv: a killed relay takes uWSGI along (its workers and nginx follow it).
env --default-signal=INT,QUIT setpriv --pdeathsig KILL -- "$@" &
uwsgi=$!
trap 'stop TERM' TERM
trap 'stop INT' INT
trap 'stop QUIT' QUIT
trap 'kill -HUP "$uwsgi" 2>/dev/null || true' HUP
trap 'kill -USR1 "$uwsgi" 2>/dev/null || true' USR1
trap 'kill -USR2 "$uwsgi" 2>/dev/null || true' USR2
# wait returns early when a trapped signal arrives: wait again until uWSGI is gone.
while kill -0 "$uwsgi" 2>/dev/null; do wait "$uwsgi" || true; done
rc=0
wait "$uwsgi" || rc=$?
# nginx leaves with uWSGI's master (its parent-death TERM): nothing of ours outlives the relay.
if front=$(front_pid); then wait_gone "$front" 10; fi
exit "$rc"
