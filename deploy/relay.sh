#!/usr/bin/env bash
# The API's signal relay with the nginx front (SAHARA_API_FRONT=nginx;
# docs/signals.md): the launcher execs it in its place, so it gets every
# signal meant for the API (supervisord, tini, a pod, a killed supervisord's
# parent-death TERM), and it runs uWSGI, its argv, as its only child.
#
# Why: uWSGI's own TERM stops the workers first and its daemons last, so
# nginx would go on accepting requests and receiving uploads while the
# workers go, and cut them. Here a stop is front first (deploy/front.sh stop):
#   TERM      nginx drains: it closes its listener and finishes every request
#             it accepted, bodies still uploading included, against workers
#             that are still running; once nginx is gone, TERM to uWSGI: its
#             graceful stop, the workers idle by then; exit with uWSGI's status;
#   INT QUIT  fast stop: nginx closes every connection at once, then the same
#             signal to uWSGI (its workers are killed);
#   HUP USR1 USR2  passed on to uWSGI as they are (HUP: its graceful reload,
#             which keeps nginx and its client connections).
# It only orders a stop: uWSGI's master still starts, watches and restarts
# nginx, the workers and the metrics exporter.
# bash rather than Python because it stays resident: 0.5 MiB PSS, not 4.
set -euo pipefail

front=${BASH_SOURCE[0]%/*}/front.sh  # no $(...): a fork before the traps are set
uwsgi=
stopping=

# shellcheck disable=SC2317  # run by the traps below
stop() {  # stop SIGNAL: the front first, then uWSGI (once it runs)
    [ -z "$stopping" ] || return 0
    stopping=$1
    /bin/bash "$front" stop "$1"
    [ -z "$uwsgi" ] || kill -"$1" "$uwsgi" 2>/dev/null || true
}

# shellcheck disable=SC2317
pass() { [ -z "$uwsgi" ] || kill -"$1" "$uwsgi" 2>/dev/null || true; }

# Set before uWSGI starts: a TERM in between would kill the relay (and uWSGI with it).
trap 'stop TERM' TERM
trap 'stop INT' INT
trap 'stop QUIT' QUIT
trap 'pass HUP' HUP
trap 'pass USR1' USR1
trap 'pass USR2' USR2

# A background job of a script ignores INT and QUIT: uWSGI gets them at their defaults.
# setpriv: a killed relay takes uWSGI along (its workers and nginx follow it).
env --default-signal=INT,QUIT setpriv --pdeathsig KILL -- "$@" &
uwsgi=$!
# A stop that came before uWSGI existed: it has its signal now. A signal the
# child loses (caught before it drops the relay's traps, or in uWSGI's first
# milliseconds, when it ignores TERM) is made up by front.sh run: the master
# starts it in nginx's place, and it sends INT while the stop mark is there.
[ -z "$stopping" ] || kill -"$stopping" "$uwsgi" 2>/dev/null || true
# wait returns early (status > 128) when a trapped signal arrives: wait again
# until uWSGI is gone; bash keeps a reaped child's status for the last wait.
while kill -0 "$uwsgi" 2>/dev/null; do wait "$uwsgi" || true; done
rc=0
wait "$uwsgi" || rc=$?
# nginx leaves with uWSGI's master (its parent-death TERM): nothing of ours outlives the relay.
/bin/bash "$front" wait 10
exit "$rc"
