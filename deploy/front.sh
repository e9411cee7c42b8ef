#!/usr/bin/env bash
# The nginx front's one owner (SAHARA_API_FRONT=nginx; docs/signals.md).
#
#   front.sh run          uwsgi.ini's daemon line: nginx, bound to the life of the
#                         uWSGI master that runs it; during a stop, INT to that
#                         master instead
#   front.sh stop SIGNAL  the front first, for deploy/relay.sh: TERM drains (QUIT
#                         to nginx: it closes its listener and finishes what it
#                         accepted), INT or QUIT stop it at once (TERM to nginx)
#   front.sh wait SECONDS until nginx has gone
#
# Its files (the launcher names them: SAHARA_FRONT_PID, SAHARA_FRONT_STOP):
# nginx's pidfile, which uWSGI's master watches to restart nginx, and the
# stop mark that keeps the master from starting a new nginx meanwhile.
set -euo pipefail

pidfile=$SAHARA_FRONT_PID
stopfile=$SAHARA_FRONT_STOP

# shellcheck source=deploy/proc.sh
source "${BASH_SOURCE[0]%/*}/proc.sh"  # alive

front_pid() {  # nginx's master, from its pidfile
    local pid
    read -r pid 2>/dev/null <"$pidfile" && alive "$pid" && echo "$pid"
}

wait_gone() {  # wait_gone PID SECONDS
    local deadline=$((SECONDS + $2))
    while alive "$1" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
}

case ${1:-} in
    run)
        if [ -e "$stopfile" ]; then
            # A stop is under way and this master still runs: its signal came in
            # uWSGI's first milliseconds, when main() ignores TERM (seen: it ran
            # on). INT, a fast stop: nothing is in flight, nginx never started
            # under this master or has drained, and no worker can miss it.
            if read -r parent 2>/dev/null <"/proc/$PPID/comm" && [ "$parent" = uwsgi ]; then
                kill -INT "$PPID" 2>/dev/null || true
            fi
            exit 0
        fi
        # A SIGKILLed nginx master leaves its worker holding the port (its
        # process group is the master's pid): end it before starting again.
        { read -r old <"$pidfile" && kill -s KILL -- "-$old"; } 2>/dev/null || true
        # nginx stops (TERM: its worker too) when uWSGI's master dies, which
        # sets no parent-death signal on daemons with a pidfile. The signal is
        # set after the fork: if the master died before, none ever comes. A
        # master on its way out forks nginx's respawn, which may wait out a
        # throttle and run after "goodbye to uWSGI": so the parent must be
        # uWSGI here, and still the same once the signal is set.
        read -r parent 2>/dev/null <"/proc/$PPID/comm" && [ "$parent" = uwsgi ] || exit 0
        exec setpriv --pdeathsig TERM -- /bin/bash "$0" nginx "$PPID"
        ;;
    nginx)  # run's second half, under the parent-death signal
        [ "$PPID" = "$2" ] || exit 0
        exec "$SAHARA_FRONT_NGINX" -e stderr -c "$SAHARA_RUN_DIR/nginx.conf"
        ;;
    stop)
        : >"$stopfile"
        front=$(front_pid) || exit 0
        if [ "$2" = TERM ]; then
            kill -QUIT "$front" 2>/dev/null || true
            # nginx ends its own wait (worker_shutdown_timeout); this bound is for a hung one.
            wait_gone "$front" "$SAHARA_API_STOP_TIMEOUT"
        else  # its clients see their connections close, not a 502
            kill -TERM "$front" 2>/dev/null || true
            wait_gone "$front" 5
        fi
        ;;
    wait)
        if front=$(front_pid); then wait_gone "$front" "$2"; fi
        ;;
    *)
        echo "usage: front.sh run|stop SIGNAL|wait SECONDS" >&2
        exit 64
        ;;
esac
