#!/usr/bin/env bash
# Entrypoint of the sahara-api image (tini runs it as PID 1's only child).
#
#   MODE         a launcher mode (`python sahara_api_launcher.py modes` lists
#                them; api is the default, one per pod)
#   all-in-one   the launcher's, run here in a session of its own (one host, `docker run`)
#   debug        refused with one line: `make debug` on a host (needs dev tools)
#   healthcheck  exit 0 if this container's service is healthy (HEALTHCHECK)
#   a command    run as it is, e.g. `bash` or `sahara-db-manage --help`
#
# The knobs come from sahara_api_knobs.py (the environment over
# deploy/defaults.env), exported here for the healthcheck and all-in-one's
# stop; the launcher checks them.
set -euo pipefail

APP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EX_CONFIG=78

die() {
    printf 'sahara-api: ERROR: %s\n' "$1" >&2
    exit "${2:-$EX_CONFIG}"
}

knobs=$(python "$APP/sahara_api_knobs.py" show)
set -a
eval "$knobs"
set +a

# Sahara's trustee account defaults to the [keystone_authtoken] one only when
# that is in a file (sahara/utils/openstack/keystone.py reads the raw file):
# give it the environment's keystone_authtoken values too, unless set.
for opt in AUTH_URL PASSWORD USERNAME PROJECT_NAME USER_DOMAIN_NAME PROJECT_DOMAIN_NAME; do
    src=OS_KEYSTONE_AUTHTOKEN__$opt dst=OS_TRUSTEE__$opt
    if [ -n "${!src:-}" ] && [ -z "${!dst+set}" ]; then
        export "$dst=${!src}"
    fi
done

# GET /healthcheck over bash's /dev/tcp: no curl in the image, no Python
# start-up; over HTTPS (SAHARA_API_TLS_CERT) Python's ssl, not verifying the
# certificate: this checks the API, not the certificate.
http_healthy() {
    local host=$SAHARA_API_HOST url_host status
    case $host in 0.0.0.0) host=127.0.0.1 ;; ::) host=::1 ;; esac  # a wildcard: loopback
    url_host=$host
    [[ $host != *:* ]] || url_host="[$host]"  # IPv6
    if [ -n "${SAHARA_API_TLS_CERT:-}" ]; then
        python -c 'import ssl, sys, urllib.request as u
u.urlopen(sys.argv[1], timeout=5, context=ssl._create_unverified_context())' \
            "https://$url_host:$SAHARA_API_PORT/healthcheck" 2>/dev/null
        return
    fi
    exec 3<>"/dev/tcp/$host/$SAHARA_API_PORT" || return 1
    printf 'GET /healthcheck HTTP/1.0\r\nHost: %s\r\n\r\n' "$url_host" >&3
    read -r -t 5 _ status _ <&3 || return 1
    [ "$status" = 200 ]
}

healthcheck() {
    # The mode this container runs is tini's argument.
    local pid1
    pid1=$(tr '\0' ' ' </proc/1/cmdline)
    case " $pid1 " in
        *" engine "* | *" db-sync "*) exit 0 ;;  # no HTTP; the container exits if the process does
    esac
    http_healthy
}

mode=${1:-api}
[ $# -eq 0 ] || shift
case $mode in
    all-in-one)
        # supervisord in a session of its own, waited for with everything it
        # started: a killed supervisord's API and engine finish their requests
        # before the container ends (deploy/all-in-one.sh).
        TAG='[all-in-one]'
        # shellcheck source=deploy/all-in-one.sh
        source "$APP/deploy/all-in-one.sh"
        rc=0
        run_all_in_one python "$APP/sahara_api_launcher.py" all-in-one "$@" || rc=$?
        exit "$rc" ;;
    debug)
        # The launcher's debug mode runs under hupper, a dev tool (requirements/dev.txt).
        die "debug mode (one process, green threads, pdb) is for a host checkout: run \`make debug\` there; this image runs the other modes (\`docker run sahara-api modes\`)" ;;
    healthcheck)
        healthcheck ;;
    *)
        # A command of the image (bash, sahara-db-manage), or a launcher mode:
        # the launcher checks the settings, then execs the mode's service; it
        # names an unknown mode with the list of its own.
        if command -v "$mode" >/dev/null; then exec "$mode" "$@"; fi
        exec python "$APP/sahara_api_launcher.py" "$mode" "$@" ;;
esac
