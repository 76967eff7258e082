#!/usr/bin/env bash
# The Docker engine as a swarm manager, for the lease-swarm tests.
#
#   eval "$(scripts/swarm.sh start)"   # prints `export LEASE_TEST_SWARM=1` (and LEASE_TEST_SWARM_CREATED)
#   scripts/swarm.sh stop "${LEASE_TEST_SWARM_CREATED:-}"
#
# start: if the engine is already a swarm manager, uses that swarm as it is.
# If it is in no swarm, `docker swarm init --advertise-addr 127.0.0.1` makes
# a single-node one (127.0.0.1: nothing is exposed on the network) and
# records that this script created it (LEASE_TEST_SWARM_CREATED=<node id>).
# An engine that is a swarm *worker*, or a swarm init that fails, means no
# swarm: the Swarm tests skip with a reason, unless CI=true, where it fails.
#
# stop: leaves the swarm (`docker swarm leave --force`) only if start created
# it — the argument must be the node id start printed, and the engine must
# still be that node — so an operator's swarm is never left. Safe to call
# twice or with an empty argument.
set -euo pipefail
cd "$(dirname "$0")/.."

LIB_NAME=swarm.sh LIB_NEEDS="a Docker engine in swarm mode" LIB_SKIPS="Swarm tests will skip"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# The engine's swarm state: `inactive`, `active`, `pending`, `error`, `locked`.
swarm_state() { docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null; }
# Whether this node is a manager (`true`/`false`).
swarm_manager() { docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null; }
swarm_node() { docker info --format '{{.Swarm.NodeID}}' 2>/dev/null; }

start() {
    command -v docker >/dev/null 2>&1 || fail_or_skip "the docker CLI is not installed"
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
        fail_or_skip "the Docker engine is not reachable (DOCKER_HOST=${DOCKER_HOST:-unset})"
    local state
    state="$(swarm_state)"
    case "$state" in
        active)
            [[ "$(swarm_manager)" == "true" ]] ||
                fail_or_skip "the engine is a swarm worker, not a manager (the tests need a manager)"
            log "the engine is already a swarm manager (node $(swarm_node)); using that swarm, not leaving it"
            ;;
        inactive)
            if ! docker swarm init --advertise-addr 127.0.0.1 >/dev/null 2>&1; then
                fail_or_skip "docker swarm init --advertise-addr 127.0.0.1 failed: $(docker swarm init --advertise-addr 127.0.0.1 2>&1 | head -1)"
            fi
            local node
            node="$(swarm_node)"
            log "created a single-node swarm (node $node, advertise 127.0.0.1); stop leaves it"
            printf 'export LEASE_TEST_SWARM_CREATED=%q\n' "$node"
            ;;
        *)
            fail_or_skip "the engine's swarm state is \`${state:-unknown}\` (neither in a swarm nor out of one)"
            ;;
    esac
    printf 'export LEASE_TEST_SWARM=1\n'
}

stop() {
    local created="${1:-}"
    [[ -n "$created" ]] || return 0
    if [[ "$(swarm_state)" != "active" || "$(swarm_node)" != "$created" ]]; then
        log "the swarm node $created this script created is gone already"
        return 0
    fi
    docker swarm leave --force >/dev/null
    log "left the swarm this script created (node $created)"
}

case "${1:-}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    *)
        echo "usage: $0 start | stop [NODE_ID]" >&2
        exit 2
        ;;
esac
