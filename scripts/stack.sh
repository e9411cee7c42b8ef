#!/usr/bin/env bash
# Local Sahara stack for `make run` and the integration tests:
# MariaDB, RabbitMQ, memcached, Keystone (uWSGI, :5000), Sahara's DB schema.
#
#   scripts/stack.sh up     install what is missing, start what is not running
#   scripts/stack.sh down   stop what `up` started (and nothing else) once no other run holds it
#   scripts/stack.sh install  only the Debian packages and .venv
#   scripts/stack.sh packages NAME...   install the Debian packages that are missing
#                           (image.sh, fresh-check.sh and the Python harness use it)
#   scripts/stack.sh lock   regenerate requirements/constraints.txt
#   scripts/stack.sh vhost add|del NAME   a RabbitMQ vhost of one test run
#
# Services found running are reused and never stopped. State lives in .stack/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=$ROOT/.stack
VENV=$ROOT/.venv
# One line per service `up` started; the tests keep their own list.
STARTED=${STACK_STARTED:-$STATE/started}
# Who uses which service, machine-wide (two checkouts share one MariaDB): a
# directory per service with a file per run that holds it, named by the pid
# whose life is the run's (the caller: run.sh, the harness; STACK_HOLDER),
# and `stop-last` when its starter left it to the last holder to stop.
REGISTRY=${STACK_REGISTRY:-/tmp/sahara-api-stack}
HOLDER=${STACK_HOLDER:-$PPID}
# memcached's port. tests/integration/test_make_run_stop.py has `make run`
# start one of its own on another port (pidfile beside its list), to see
# when `down` stops what `up` started.
MEMCACHED_PORT=${STACK_MEMCACHED_PORT:-11211}
MEMCACHED_PID=$(dirname "$STARTED")/memcached.pid
KEYSTONE_PORT=5000
SAHARA_CONF=$ROOT/etc/sahara/sahara.conf
DEV_PASSWORD=dev-secret         # local dev stack only; matches etc/sahara/sahara.conf
# libpcre2-dev: pip compiles uWSGI's internal routing (uwsgi.ini's route-if) only with it.
# libssl-dev: Keystone's scrypt has no wheel for Python 3.11; pip compiles it against OpenSSL.
# nginx and its headers-more module: the API's HTTP front (SAHARA_API_FRONT=nginx, docs/security.md).
APT_PACKAGES=(mariadb-server rabbitmq-server memcached python3-venv python3-dev gcc libc6-dev libpcre2-dev libssl-dev make wrk shellcheck nginx libnginx-mod-http-headers-more-filter)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

say() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {  # wait_port PORT NAME SECONDS
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        port_open "$1" && return 0
        sleep 0.1
    done
    die "$2 did not open port $1 within $3 s (log: $STATE/logs/$2.log)"
}

mark_started() { grep -qx "$1" "$STARTED" 2>/dev/null || echo "$1" >>"$STARTED"; }

hold() {  # hold SERVICE: this run uses it, whoever started it
    mkdir -p "$REGISTRY/$1"
    : >"$REGISTRY/$1/holder.$HOLDER"
}

other_holders() {  # other_holders SERVICE: live runs besides this one that hold it (dead ones forgotten)
    local f pid
    for f in "$REGISTRY/$1"/holder.*; do
        [ -e "$f" ] || continue
        pid=${f##*.}
        [ "$pid" != "$HOLDER" ] || continue
        if kill -0 "$pid" 2>/dev/null; then echo "$pid"; else rm -f "$f"; fi
    done
}

instance_pid() {  # instance_pid SERVICE: the pid of the instance this run started (empty: stopped by name)
    case $1 in
        keystone) cat "$STATE/keystone.pid" 2>/dev/null || true ;;
        memcached@*) cat "$MEMCACHED_PID" 2>/dev/null || true ;;
    esac
}

release() {  # release SERVICE: 0 if this run stops it now (its pid in stop_pid), 1 if it stays up
    local others
    rm -f "$REGISTRY/$1/holder.$HOLDER"
    others=$(other_holders "$1" | tr '\n' ' ')
    if [ -n "$others" ]; then
        if grep -qx "$1" "$STARTED" 2>/dev/null; then
            instance_pid "$1" >"$REGISTRY/$1/stop-last"
            say "leaving $1 running: still used by pid ${others% } (the last run to leave stops it)"
        fi
        return 1
    fi
    if grep -qx "$1" "$STARTED" 2>/dev/null; then
        stop_pid=$(instance_pid "$1")
    elif [ -e "$REGISTRY/$1/stop-last" ]; then
        stop_pid=$(cat "$REGISTRY/$1/stop-last")
    else
        return 1
    fi
    rm -f "$REGISTRY/$1/stop-last"
}

wait_closed() {  # wait_closed PORT: until nothing listens there (max 30 s)
    local i
    for ((i = 0; i < 300; i++)); do
        port_open "$1" || return 0
        sleep 0.1
    done
}

# install_packages NAME...: dpkg-query first, apt-get only for what it does not
# find; bounded, so a stuck mirror fails the caller instead of hanging it.
install_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -q >/dev/null ||
        die "apt-get update failed (above)"
    $SUDO env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q --no-install-recommends "${missing[@]}" \
        >/dev/null || die "cannot install ${missing[*]} (apt-get above)"
}

install_venv() {
    local stamp=$VENV/.installed
    # Reinstall only when the pins changed.
    if [ -f "$stamp" ] && cmp -s "$stamp" <(cat "$ROOT"/requirements/*.txt); then
        check_uwsgi
        return 0
    fi
    say "installing Python packages into .venv (first time: ~2 min, uWSGI compiles)"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -U 'pip==23.2.1' 'setuptools==69.5.1' 'wheel==0.40.0'
    "$VENV/bin/pip" install -q -c "$ROOT/requirements/constraints.txt" -r "$ROOT/requirements/dev.txt"
    check_uwsgi
    cat "$ROOT"/requirements/*.txt >"$stamp"
}

# pip reuses a cached uWSGI wheel built before libpcre2-dev was installed:
# rebuild it without the cache once, then give up with the launcher's line.
check_uwsgi() {
    local check=("$VENV/bin/python" "$ROOT/sahara_api_launcher.py" check-uwsgi)
    "${check[@]}" 2>/dev/null && return 0
    say "uWSGI lacks a feature deploy/uwsgi.ini uses: rebuilding it without pip's cache (~1 min)"
    "$VENV/bin/pip" install -q --no-cache-dir --force-reinstall --no-deps \
        -c "$ROOT/requirements/constraints.txt" uwsgi
    "${check[@]}" || die "uWSGI still lacks it after a rebuild: see the line above"
}

start_mariadb() {
    hold mariadb
    if $SUDO mariadb-admin ping >/dev/null 2>&1; then
        say "MariaDB: already running, reusing it"
        return 0
    fi
    say "MariaDB: starting"
    $SUDO install -d -o mysql -g mysql /run/mysqld
    # setsid: Ctrl-C on `make run` reaches supervisord, not the databases;
    # `down` stops them in order.
    $SUDO setsid mariadbd --user=mysql --bind-address=127.0.0.1 \
        >"$STATE/logs/mariadb.log" 2>&1 </dev/null &
    mark_started mariadb
    local i
    for ((i = 0; i < 300; i++)); do
        $SUDO mariadb-admin ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "MariaDB did not start within 30 s (log: $STATE/logs/mariadb.log)"
}

start_rabbitmq() {
    hold rabbitmq
    if port_open 5672; then
        say "RabbitMQ: already running, reusing it"
    else
        say "RabbitMQ: starting"
        $SUDO setsid rabbitmq-server >"$STATE/logs/rabbitmq.log" 2>&1 </dev/null &
        mark_started rabbitmq
        wait_port 5672 rabbitmq 60
        $SUDO rabbitmqctl -q await_startup >/dev/null || die "RabbitMQ did not start (log: /var/log/rabbitmq/)"
    fi
    if ! $SUDO rabbitmqctl -q list_users | grep -q '^sahara\b'; then
        $SUDO rabbitmqctl -q add_user sahara "$DEV_PASSWORD" >/dev/null
    fi
    # `make run`'s vhost; each test, bench and soak run makes its own (`vhost add`),
    # so a `make run` engine never answers their RPCs.
    $SUDO rabbitmqctl -q set_permissions -p / sahara '.*' '.*' '.*' >/dev/null
}

start_memcached() {
    hold "memcached@$MEMCACHED_PORT"
    if port_open "$MEMCACHED_PORT"; then
        say "memcached: already running, reusing it"
        return 0
    fi
    say "memcached: starting"
    local user=()
    [ "$(id -u)" -eq 0 ] && user=(-u memcache)
    setsid memcached "${user[@]}" -l 127.0.0.1 -p "$MEMCACHED_PORT" >>"$STATE/logs/memcached.log" 2>&1 </dev/null &
    echo $! >"$MEMCACHED_PID"
    mark_started "memcached@$MEMCACHED_PORT"
    wait_port "$MEMCACHED_PORT" memcached 10
}

create_databases() {
    local db
    for db in sahara keystone; do
        $SUDO mariadb -e "CREATE DATABASE IF NOT EXISTS $db CHARACTER SET utf8mb4;
            CREATE USER IF NOT EXISTS '$db'@'127.0.0.1' IDENTIFIED BY '$DEV_PASSWORD';
            CREATE USER IF NOT EXISTS '$db'@'localhost' IDENTIFIED BY '$DEV_PASSWORD';
            GRANT ALL ON $db.* TO '$db'@'127.0.0.1';
            GRANT ALL ON $db.* TO '$db'@'localhost';"
    done
}

write_keystone_conf() {
    mkdir -p "$STATE/keystone"
    cat >"$STATE/keystone/keystone.conf" <<EOF
[DEFAULT]
use_stderr = true
[database]
connection = mysql+pymysql://keystone:$DEV_PASSWORD@127.0.0.1/keystone
[fernet_tokens]
key_repository = $STATE/keystone/fernet-keys
[credential]
key_repository = $STATE/keystone/credential-keys
EOF
}

start_keystone() {
    local manage=("$VENV/bin/keystone-manage" --config-file "$STATE/keystone/keystone.conf")
    hold keystone
    if [ ! -f "$STATE/keystone/.bootstrapped" ]; then
        say "Keystone: db_sync, fernet/credential keys, bootstrap"
        {
            "${manage[@]}" db_sync
            "${manage[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
            "${manage[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
            "${manage[@]}" bootstrap --bootstrap-password "$DEV_PASSWORD" \
                --bootstrap-public-url "http://127.0.0.1:$KEYSTONE_PORT/v3" \
                --bootstrap-region-id RegionOne
        } 2>>"$STATE/logs/keystone-manage.log" || die "keystone-manage failed (log: $STATE/logs/keystone-manage.log)"
        touch "$STATE/keystone/.bootstrapped"
    fi
    if port_open "$KEYSTONE_PORT"; then
        say "Keystone: already running on :$KEYSTONE_PORT, reusing it"
        return 0
    fi
    say "Keystone: starting under uWSGI on 127.0.0.1:$KEYSTONE_PORT"
    # Connection: close because keystoneauth reuses connections that
    # --http-socket would otherwise close under it.
    OS_KEYSTONE_CONFIG_DIR=$STATE/keystone OS_KEYSTONE_CONFIG_FILES=keystone.conf \
        "$VENV/bin/uwsgi" --master --processes 2 --http-socket "127.0.0.1:$KEYSTONE_PORT" \
        --wsgi-file "$VENV/bin/keystone-wsgi-public" --add-header "Connection: close" \
        --die-on-term --need-app --pidfile "$STATE/keystone.pid" \
        --daemonize "$STATE/logs/keystone.log"
    mark_started keystone
    wait_port "$KEYSTONE_PORT" keystone 30
}

write_openrc() {
    cat >"$ROOT/openrc" <<EOF
# Admin credentials of the local dev stack (written by scripts/stack.sh).
export OS_AUTH_URL=http://127.0.0.1:$KEYSTONE_PORT/v3
export OS_USERNAME=admin
export OS_PASSWORD=$DEV_PASSWORD
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_IDENTITY_API_VERSION=3
export OS_INTERFACE=public
EOF
}

register_sahara() {
    [ -f "$STATE/keystone/.sahara-registered" ] && return 0
    say "Keystone: creating the sahara service user, service and endpoint"
    # shellcheck source=/dev/null
    source "$ROOT/openrc"
    local os=("$VENV/bin/openstack")
    "${os[@]}" project show service >/dev/null 2>&1 || "${os[@]}" project create service >/dev/null
    "${os[@]}" user show sahara >/dev/null 2>&1 || "${os[@]}" user create --password "$DEV_PASSWORD" sahara >/dev/null
    "${os[@]}" role add --project service --user sahara admin
    "${os[@]}" service show data-processing >/dev/null 2>&1 ||
        "${os[@]}" service create --name sahara data-processing >/dev/null
    local knobs
    knobs=$("$VENV/bin/python" "$ROOT/sahara_api_knobs.py" show)  # the environment over deploy/defaults.env
    eval "$(grep -E '^SAHARA_API_(HOST|PORT)=' <<<"$knobs")"
    "${os[@]}" endpoint list --service data-processing -f value | grep -q . ||
        "${os[@]}" endpoint create --region RegionOne data-processing public \
            "http://$SAHARA_API_HOST:$SAHARA_API_PORT/v2" >/dev/null
    touch "$STATE/keystone/.sahara-registered"
}

migrate_sahara() {
    say "Sahara: sahara-db-manage upgrade head"
    "$VENV/bin/sahara-db-manage" --config-file "$SAHARA_CONF" upgrade head >>"$STATE/logs/sahara-db-manage.log" 2>&1 ||
        die "sahara-db-manage failed (log: $STATE/logs/sahara-db-manage.log)"
}

up() {
    local t0=$SECONDS
    mkdir -p "$STATE/logs"
    install_packages "${APT_PACKAGES[@]}"
    install_venv
    start_mariadb
    start_rabbitmq
    start_memcached
    create_databases
    write_keystone_conf
    start_keystone
    write_openrc
    register_sahara
    migrate_sahara
    say "stack ready in $((SECONDS - t0)) s (admin credentials: source openrc)"
}

down() {
    local svc stop_pid
    # Reverse order: Keystone before the database it uses.
    for svc in keystone "memcached@$MEMCACHED_PORT" rabbitmq mariadb; do
        release "$svc" || continue
        say "stopping $svc"
        case $svc in
            keystone)  # uWSGI with die-on-term: TERM is its graceful stop
                kill -TERM "$stop_pid" 2>/dev/null || true
                wait_closed "$KEYSTONE_PORT" ;;
            memcached@*)
                kill -TERM "$stop_pid" 2>/dev/null || true
                wait_closed "$MEMCACHED_PORT" ;;
            rabbitmq)
                # shutdown, not stop: it returns once the broker's runtime has exited.
                $SUDO rabbitmqctl -q shutdown >/dev/null 2>&1 || true
                # rabbitmq-server also started Erlang's port mapper, which outlives it.
                # `epmd -kill` refuses while a node is registered (rabbitmqctl's own
                # leaves as it exits): up to 10 s, then leave it to whichever other
                # Erlang node still uses it.
                for _ in {1..20}; do
                    $SUDO epmd -kill >/dev/null 2>&1 || true
                    $SUDO epmd -names >/dev/null 2>&1 || break
                    sleep 0.5
                done ;;
            mariadb) $SUDO mariadb-admin shutdown 2>/dev/null || true ;;
        esac
        rmdir "$REGISTRY/$svc" 2>/dev/null || true  # no holder left (a dead one's file: the next walk)
    done
    rm -f "$STARTED"
}

# Each test run talks RPC in a vhost of its own, so no other engine (a
# `make run`, another test run) ever answers its calls.
vhost() {
    case $1 in
        add)
            $SUDO rabbitmqctl -q add_vhost "$2" >/dev/null
            $SUDO rabbitmqctl -q set_permissions -p "$2" sahara '.*' '.*' '.*' >/dev/null ;;
        del) $SUDO rabbitmqctl -q delete_vhost "$2" >/dev/null ;;
    esac
}

lock() {
    local tmp
    tmp=$(mktemp -d)
    python3 -m venv "$tmp/venv"
    "$tmp/venv/bin/pip" install -q -U 'pip==23.2.1' 'setuptools==69.5.1' 'wheel==0.40.0'
    "$tmp/venv/bin/pip" install -q -c "$ROOT/requirements/upper-constraints-2023.2.txt" -r "$ROOT/requirements/dev.txt"
    {
        echo "# Full pin set, generated by 'make lock' from requirements/dev.txt with the"
        echo "# OpenStack 2023.2 upper-constraints (requirements/upper-constraints-2023.2.txt)."
        "$tmp/venv/bin/pip" freeze
    } >"$ROOT/requirements/constraints.txt"
    rm -rf "$tmp"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    install) install_packages "${APT_PACKAGES[@]}" && install_venv ;;
    packages) shift && install_packages "$@" ;;
    check-uwsgi) check_uwsgi ;;
    lock) lock ;;
    vhost) vhost "$2" "$3" ;;
    *) die "usage: $0 up|down|install|packages NAME...|lock|vhost add|del NAME" ;;
esac
