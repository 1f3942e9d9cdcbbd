#!/usr/bin/env bash
# A throwaway PostgreSQL for the test suite.
#
#   tests/postgres.sh start   # initdb in a temp dir, start on a free loopback port,
#                             # print the admin URL (postgres://postgres@127.0.0.1:PORT/postgres)
#   tests/postgres.sh url     # print the URL of the running instance
#   tests/postgres.sh stop    # stop it and delete its directory
#   tests/postgres.sh halt    # stop the server but keep its data (an outage)
#   tests/postgres.sh resume  # start a halted server again on the same port
#
# State lives in $GATEHOUSE_PG_DIR (default ${TMPDIR:-/tmp}/gatehouse-pg). PostgreSQL
# refuses to run as root, so as root the server runs as the `postgres` OS user.
# Trust authentication, loopback only, fsync off: for tests, never for data.
set -euo pipefail

STATE_DIR="${GATEHOUSE_PG_DIR:-${TMPDIR:-/tmp}/gatehouse-pg}"
DATA_DIR="$STATE_DIR/data"
URL_FILE="$STATE_DIR/url"
LOG_FILE="$STATE_DIR/postgres.log"

find_bin() {
    local name=$1
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return
    fi
    local candidate
    for candidate in /usr/lib/postgresql/*/bin/"$name"; do
        if [ -x "$candidate" ]; then
            echo "$candidate"
            return
        fi
    done
    echo "postgres.sh: $name not found (install PostgreSQL server binaries)" >&2
    exit 1
}

as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

running() {
    [ -f "$URL_FILE" ] && as_pg "$(find_bin pg_ctl)" -D "$DATA_DIR" status >/dev/null 2>&1
}

start() {
    if running; then
        cat "$URL_FILE"
        return
    fi
    rm -rf "$STATE_DIR"
    mkdir -p "$STATE_DIR"
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$STATE_DIR"
    fi
    local initdb pg_ctl port
    initdb=$(find_bin initdb)
    pg_ctl=$(find_bin pg_ctl)
    as_pg "$initdb" -D "$DATA_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
        --no-sync >"$STATE_DIR/initdb.log" 2>&1 || {
        cat "$STATE_DIR/initdb.log" >&2
        exit 1
    }
    port=$(free_port)
    launch "$port"
    echo "postgres://postgres@127.0.0.1:$port/postgres" >"$URL_FILE"
    cat "$URL_FILE"
}

# launch PORT: starts the server of $DATA_DIR on PORT and waits until it
# accepts connections.
launch() {
    as_pg "$(find_bin pg_ctl)" -D "$DATA_DIR" -l "$LOG_FILE" -w -t 60 \
        -o "-p $1 -k $STATE_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
        start >/dev/null || {
        cat "$LOG_FILE" >&2
        exit 1
    }
}

halt() {
    [ -d "$DATA_DIR" ] || { echo "postgres.sh: nothing to halt" >&2; exit 1; }
    # Fast mode: running transactions are rolled back and clients cut off,
    # like a crash from the clients' side, but committed data is kept.
    as_pg "$(find_bin pg_ctl)" -D "$DATA_DIR" -m fast -w stop >/dev/null
}

resume() {
    [ -f "$URL_FILE" ] || { echo "postgres.sh: nothing to resume" >&2; exit 1; }
    running && return
    local port
    port=$(sed -E 's|.*:([0-9]+)/.*|\1|' "$URL_FILE")
    launch "$port"
}

stop() {
    if [ -d "$DATA_DIR" ]; then
        as_pg "$(find_bin pg_ctl)" -D "$DATA_DIR" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$STATE_DIR"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
halt) halt ;;
resume) resume ;;
url)
    running || { echo "postgres.sh: not running" >&2; exit 1; }
    cat "$URL_FILE"
    ;;
*)
    echo "usage: $0 start|stop|halt|resume|url" >&2
    exit 2
    ;;
esac
