#!/usr/bin/env bash
# A private Redis for the test run (lease-store-redis).
#
#   eval "$(scripts/redis.sh start)"   # prints `export LEASE_TEST_REDIS_URL=…` lines
#   scripts/redis.sh stop "$LEASE_TEST_REDIS_DIR"
#
# start: installs Debian's redis-server if it is missing (apt-get update once,
# then apt-get install -y redis-server), starts a daemonized instance on a free
# loopback port with no persistence, its pidfile, log and working dir in a
# fresh directory under target/redis-test/, and prints the variables the tests
# read: LEASE_TEST_REDIS_URL, LEASE_TEST_REDIS_DIR (for stop) and
# LEASE_TEST_REDIS_SERVER (the binary, for tests that start their own server).
# If Redis cannot be had it prints nothing and the Redis tests skip with a
# reason, unless CI=true, where it fails.
#
# stop: shuts that instance down (SIGTERM, then SIGKILL after 10 s) and removes
# its directory. Safe to call twice or with an empty argument.
set -euo pipefail
cd "$(dirname "$0")/.."

LIB_NAME=redis.sh LIB_NEEDS=Redis LIB_SKIPS="Redis tests will skip"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_redis_server() {
    command -v redis-server >/dev/null 2>&1 && return 0
    log "installing redis-server (apt-get)"
    apt_install redis-server || fail_or_skip "redis-server is missing and apt-get could not install it"
    command -v redis-server >/dev/null 2>&1 || fail_or_skip "redis-server still missing after install"
}

# Whether something answers on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Sends PING to 127.0.0.1:$1 and checks for PONG.
pings() {
    local reply=""
    {
        exec 3<>"/dev/tcp/127.0.0.1/$1" &&
            printf 'PING\r\n' >&3 &&
            IFS= read -r -t 1 reply <&3
        exec 3>&-
    } 2>/dev/null || return 1
    [[ "$reply" == "+PONG"* ]]
}

start() {
    ensure_redis_server
    local root="${CARGO_TARGET_DIR:-target}/redis-test"
    mkdir -p "$root"
    local dir
    dir="$(cd "$(mktemp -d "$root/run.XXXXXX")" && pwd)"
    local attempt port
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        port=$((20000 + RANDOM % 40000))
        port_in_use "$port" && continue
        if redis-server - >/dev/null 2>&1 <<CONF; then
bind 127.0.0.1
port $port
protected-mode yes
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
dir $dir
save ""
appendonly no
CONF
            local i
            for i in $(seq 1 50); do
                if pings "$port"; then
                    log "started redis-server $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/') on 127.0.0.1:$port (pid $(cat "$dir/redis.pid" 2>/dev/null), dir $dir)"
                    printf 'export LEASE_TEST_REDIS_URL=%q\n' "redis://127.0.0.1:$port/0"
                    printf 'export LEASE_TEST_REDIS_DIR=%q\n' "$dir"
                    printf 'export LEASE_TEST_REDIS_SERVER=%q\n' "$(command -v redis-server)"
                    return 0
                fi
                sleep 0.1
            done
            # Did not come up (port taken in between?): stop it and try another port.
            stop "$dir" || true
            dir="$(cd "$(mktemp -d "$root/run.XXXXXX")" && pwd)"
        fi
    done
    tail -n 20 "$dir/redis.log" >&2 2>/dev/null || true
    fail_or_skip "could not start redis-server on a free port (attempts: $attempt)"
}

stop() {
    local dir="${1:-}"
    [[ -n "$dir" && -d "$dir" ]] || return 0
    local pidfile="$dir/redis.pid"
    if [[ -f "$pidfile" ]]; then
        local pid
        pid="$(cat "$pidfile")"
        if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            local i
            for i in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            if kill -0 "$pid" 2>/dev/null; then
                log "redis-server $pid did not stop in 10 s; killing it"
                kill -KILL "$pid" 2>/dev/null || true
            fi
            log "stopped redis-server (pid $pid)"
        fi
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
