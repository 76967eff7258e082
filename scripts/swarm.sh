#!/usr/bin/env bash
# The Docker engine as a swarm manager, for the lease-swarm tests.
#
#   eval "$(scripts/swarm.sh start)"   # prints `export LEASE_TEST_SWARM=1` (and the variables below)
#   scripts/swarm.sh stop "${LEASE_TEST_SWARM_CREATED:-}"
#
# start: if the engine is already a swarm manager, uses that swarm as it is
# (and adds no node to it). If it is in no swarm, this script makes one and
# records that it did (LEASE_TEST_SWARM_CREATED=<node id>):
#
# - a second node when it can (root, `ip netns`, dockerd): a network
#   namespace `containerlease-worker` joined to the host by a veth pair
#   (host 10.201.0.1/24, node 10.201.0.2/24), a second dockerd in it with its
#   own data root, exec root (and so its own managed containerd), pidfile,
#   unix socket and hostname (`containerlease-worker`, a UTS namespace), no
#   default bridge, its networks from 10.202.0.0/16; DNS is refused in the
#   namespace so that image pulls fail at once (there is no registry here);
#   the test image is copied over (`docker save | docker load`). As an
#   operator of several nodes would (lease-swarm's README), the host routes
#   10.202.0.0/16 to the node so the server reaches leases there (the node's
#   DOCKER-USER chain accepts the host), and the host's DOCKER-USER chain
#   drops anything forwarded between the node link and any other interface,
#   so leases on different nodes cannot reach each other. The swarm is then initialised advertising
#   10.201.0.1 (reachable from the node and from the host, nothing else) and
#   the node joins as a worker. Exports LEASE_TEST_SWARM_WORKER (its engine,
#   unix://…) and LEASE_TEST_SWARM_WORKER_HOSTNAME. If any step fails, the
#   worker is torn down again and the swarm has one node;
# - otherwise `docker swarm init --advertise-addr 127.0.0.1`, a single-node
#   swarm exposed on no network.
#
# An engine that is a swarm *worker*, or a swarm init that fails, means no
# swarm: the Swarm tests skip with a reason, unless CI=true, where it fails.
#
# stop: stops the worker node if start made one (leave, node removed from
# the swarm, dockerd stopped by its pidfile, namespace, veth and data root
# removed), then leaves the swarm (`docker swarm leave --force`) only if
# start created it — the argument must be the node id start printed, and the
# engine must still be that node — so an operator's swarm is never left.
# Safe to call twice or with an empty argument.
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

# The second node (see the header).
WORKER_NETNS=containerlease-worker
WORKER_HOSTNAME=containerlease-worker
WORKER_DIR=/run/containerlease-worker
WORKER_DATA=/var/lib/containerlease-worker
WORKER_SOCKET="unix://$WORKER_DIR/docker.sock"
HOST_ADDRESS=10.201.0.1
WORKER_ADDRESS=10.201.0.2
WORKER_POOL=10.202.0.0/16
# Host firewall rules (DOCKER-USER): nothing forwarded to or from the node link.
HOST_RULE_IN=(-i clw-host ! -o clw-host -j DROP)
HOST_RULE_OUT=(! -i clw-host -o clw-host -j DROP)
worker_docker() { docker -H "$WORKER_SOCKET" "$@"; }
in_worker_netns() { nsenter "--net=/var/run/netns/$WORKER_NETNS" "$@"; }

# Starts the second engine in its network namespace; fails (returns 1) if
# any step does.
start_worker_engine() {
    [[ "$(id -u)" == 0 ]] || return 1
    command -v ip >/dev/null && command -v nsenter >/dev/null && command -v unshare >/dev/null &&
        command -v dockerd >/dev/null && command -v iptables >/dev/null || return 1
    ip netns list | grep -q "^$WORKER_NETNS\b" && return 1 # someone else's, or a leftover
    ip netns add "$WORKER_NETNS" || return 1
    ip link add clw-host type veth peer name clw-node &&
        ip link set clw-node netns "$WORKER_NETNS" &&
        ip addr add "$HOST_ADDRESS/24" dev clw-host &&
        ip link set clw-host up &&
        in_worker_netns ip addr add "$WORKER_ADDRESS/24" dev clw-node &&
        in_worker_netns ip link set clw-node up &&
        in_worker_netns ip link set lo up &&
        in_worker_netns ip route add default via "$HOST_ADDRESS" || return 1
    # No registry here: refuse DNS so that the node's pull attempts fail at
    # once instead of timing out (the task then runs the local image).
    in_worker_netns iptables -I OUTPUT -p udp --dport 53 -j REJECT &&
        in_worker_netns iptables -I OUTPUT -p tcp --dport 53 -j REJECT --reject-with tcp-reset || return 1
    mkdir -p "$WORKER_DIR" "$WORKER_DATA"
    # The host's daemon.json may name its own data root: give this one its own file,
    # with the host's storage driver.
    local driver
    driver="$(docker info --format '{{.Driver}}')"
    printf '{"storage-driver": "%s", "log-driver": "json-file", "default-address-pools": [{"base": "%s", "size": 24}]}\n' \
        "$driver" "$WORKER_POOL" >"$WORKER_DIR/daemon.json"
    # nsenter (not `ip netns exec`, which remounts /sys and hides the cgroups).
    setsid nsenter "--net=/var/run/netns/$WORKER_NETNS" unshare --uts sh -c \
        "hostname $WORKER_HOSTNAME && exec dockerd --config-file $WORKER_DIR/daemon.json --data-root $WORKER_DATA \
         --exec-root $WORKER_DIR/exec --pidfile $WORKER_DIR/dockerd.pid -H $WORKER_SOCKET --bridge none" \
        >"$WORKER_DIR/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 100); do
        worker_docker version >/dev/null 2>&1 && break
        sleep 0.2
    done
    worker_docker version >/dev/null 2>&1 || return 1
    # The host (the server) reaches leases on the node, and only the host.
    in_worker_netns iptables -I DOCKER-USER -s "$HOST_ADDRESS" -d "$WORKER_POOL" -j ACCEPT &&
        in_worker_netns iptables -I DOCKER-USER -s "$WORKER_POOL" -d "$HOST_ADDRESS" \
            -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT &&
        ip route add "$WORKER_POOL" via "$WORKER_ADDRESS" &&
        iptables -I DOCKER-USER "${HOST_RULE_IN[@]}" && iptables -I DOCKER-USER "${HOST_RULE_OUT[@]}" || return 1
    docker save "${CONTAINERLEASE_TEST_IMAGE:-containerlease-test/busybox:latest}" | worker_docker load >/dev/null
}

# Tears the second node down (whatever of it exists).
stop_worker() {
    [[ -d "$WORKER_DIR" ]] || ip netns list 2>/dev/null | grep -q "^$WORKER_NETNS\b" || return 0
    local node
    node="$(worker_docker info --format '{{.Swarm.NodeID}}' 2>/dev/null || true)"
    worker_docker swarm leave --force >/dev/null 2>&1 || true
    if [[ -n "$node" ]]; then
        for _ in $(seq 1 20); do
            docker node rm --force "$node" >/dev/null 2>&1 && break
            sleep 0.5
        done
    fi
    if [[ -f "$WORKER_DIR/dockerd.pid" ]]; then
        local pid
        pid="$(cat "$WORKER_DIR/dockerd.pid")"
        if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    while iptables -D DOCKER-USER "${HOST_RULE_IN[@]}" 2>/dev/null; do :; done
    while iptables -D DOCKER-USER "${HOST_RULE_OUT[@]}" 2>/dev/null; do :; done
    ip route del "$WORKER_POOL" 2>/dev/null || true
    ip link del clw-host 2>/dev/null || true
    ip netns del "$WORKER_NETNS" 2>/dev/null || true
    # Mounts a killed engine left behind, then its files.
    grep -o " ${WORKER_DATA}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf -- "$WORKER_DATA" "$WORKER_DIR"
    log "stopped the worker node ($WORKER_HOSTNAME)"
}

# A swarm with the second node, or nothing (returns 1, everything undone).
init_with_worker() {
    if ! start_worker_engine; then
        stop_worker
        return 1
    fi
    docker swarm init --advertise-addr "$HOST_ADDRESS" >/dev/null 2>&1 || {
        stop_worker
        return 1
    }
    local token
    token="$(docker swarm join-token -q worker)"
    if ! worker_docker swarm join --token "$token" --advertise-addr "$WORKER_ADDRESS" "$HOST_ADDRESS:2377" >/dev/null 2>&1; then
        log "the worker could not join: $(worker_docker swarm join --token "$token" --advertise-addr "$WORKER_ADDRESS" "$HOST_ADDRESS:2377" 2>&1 | head -1)"
        stop_worker
        docker swarm leave --force >/dev/null 2>&1 || true
        return 1
    fi
    return 0
}

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
            if init_with_worker; then
                log "created a two-node swarm: manager $(swarm_node) (advertise $HOST_ADDRESS), worker $WORKER_HOSTNAME ($WORKER_SOCKET); stop removes both"
                printf 'export LEASE_TEST_SWARM_WORKER=%q\n' "$WORKER_SOCKET"
                printf 'export LEASE_TEST_SWARM_WORKER_HOSTNAME=%q\n' "$WORKER_HOSTNAME"
            else
                log "no second node here (it needs root, ip netns, nsenter and dockerd); a single-node swarm"
                if ! docker swarm init --advertise-addr 127.0.0.1 >/dev/null 2>&1; then
                    fail_or_skip "docker swarm init --advertise-addr 127.0.0.1 failed: $(docker swarm init --advertise-addr 127.0.0.1 2>&1 | head -1)"
                fi
                log "created a single-node swarm (node $(swarm_node), advertise 127.0.0.1); stop leaves it"
            fi
            printf 'export LEASE_TEST_SWARM_CREATED=%q\n' "$(swarm_node)"
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
    stop_worker
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
