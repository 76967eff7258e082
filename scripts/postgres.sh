#!/usr/bin/env bash
# A private PostgreSQL cluster for the test run (lease-store-postgres).
#
#   eval "$(scripts/postgres.sh start)"   # prints `export LEASE_TEST_POSTGRES_URL=…` lines
#   scripts/postgres.sh stop "$LEASE_TEST_POSTGRES_DIR"
#
# start: installs Debian's `postgresql` if its server binaries are missing
# (apt-get update once, then apt-get install -y postgresql), runs `initdb` into
# a fresh directory under target/postgres-test/ (trust authentication, loopback
# only, no Unix socket outside that directory), starts the server on a free
# loopback port and prints the variables the tests read:
# LEASE_TEST_POSTGRES_URL, LEASE_TEST_POSTGRES_DIR (for stop) and
# LEASE_TEST_POSTGRES_BIN (the server binaries, for tests that start their own
# cluster). PostgreSQL refuses to run as root: as root, the cluster runs as the
# `postgres` user that Debian's package creates. If PostgreSQL cannot be had it
# prints nothing and the PostgreSQL tests skip with a reason, unless CI=true,
# where it fails.
#
# stop: stops that cluster (fast shutdown, then immediate after 10 s) and
# removes its directory. Safe to call twice or with an empty argument.
set -euo pipefail
cd "$(dirname "$0")/.."

LIB_NAME=postgres.sh LIB_NEEDS=PostgreSQL LIB_SKIPS="PostgreSQL tests will skip"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# The newest /usr/lib/postgresql/*/bin holding initdb, or LEASE_TEST_POSTGRES_BIN.
find_bin() {
    if [[ -n "${LEASE_TEST_POSTGRES_BIN:-}" && -x "$LEASE_TEST_POSTGRES_BIN/initdb" ]]; then
        printf '%s\n' "$LEASE_TEST_POSTGRES_BIN"
        return 0
    fi
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    [[ -n "$dir" && -x "$dir/initdb" ]] || return 1
    printf '%s\n' "$dir"
}

ensure_postgres() {
    find_bin >/dev/null && return 0
    log "installing postgresql (apt-get)"
    apt_install postgresql || fail_or_skip "PostgreSQL is missing and apt-get could not install it"
    find_bin >/dev/null || fail_or_skip "PostgreSQL still missing after install"
}

# Runs a server binary as the cluster's user (postgres when we are root).
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Whether something answers on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
    ensure_postgres
    local bin
    bin="$(find_bin)"
    local root="${CARGO_TARGET_DIR:-target}/postgres-test"
    mkdir -p "$root"
    local dir
    dir="$(cd "$(mktemp -d "$root/run.XXXXXX")" && pwd)"
    chmod 755 "$dir"
    [[ "$(id -u)" == 0 ]] && chown postgres: "$dir"
    as_owner "$bin/initdb" -D "$dir/data" --auth=trust --username=postgres \
        --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        { tail -n 20 "$dir/initdb.log" >&2; fail_or_skip "initdb failed"; }
    local attempt port
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        port=$((20000 + RANDOM % 40000))
        port_in_use "$port" && continue
        if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=on" \
            start >/dev/null 2>&1; then
            log "started PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (dir $dir)"
            printf 'export LEASE_TEST_POSTGRES_URL=%q\n' "postgres://postgres@127.0.0.1:$port/postgres"
            printf 'export LEASE_TEST_POSTGRES_DIR=%q\n' "$dir"
            printf 'export LEASE_TEST_POSTGRES_BIN=%q\n' "$bin"
            return 0
        fi
    done
    tail -n 20 "$dir/postgres.log" >&2 2>/dev/null || true
    fail_or_skip "could not start PostgreSQL on a free port (attempts: $attempt)"
}

stop() {
    local dir="${1:-}"
    [[ -n "$dir" && -d "$dir" ]] || return 0
    local bin
    if bin="$(find_bin)" && [[ -f "$dir/data/postmaster.pid" ]]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 10 stop >/dev/null 2>&1 ||
            as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
        log "stopped PostgreSQL (dir $dir)"
    fi
    rm -rf -- "$dir"
}

case "${1:-}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    *)
        echo "usage: $0 start | stop DIR" >&2
        exit 2
        ;;
esac
