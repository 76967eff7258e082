#!/usr/bin/env bash
# The one test command (README.md, .ci/run): format, lints, and every test of
# the workspace, doc tests included. It installs and starts what the tests
# need (the local Docker test image, a private Redis) and stops what it starts.
#
# CI=true turns a missing service into a failure instead of a printed skip.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
# apt_install (and log/fail_or_skip, unused here)
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

# (lease-http: the web terminal's emulator) Its unit tests are plain ES
# modules run by Node's own test runner (no npm, no packages).
step "node --test adapters/http/ui-tests/ (the page's scripts)"
if command -v node >/dev/null 2>&1; then
    node --test adapters/http/ui-tests/
elif [ "${CI:-}" = "true" ]; then
    echo "node is not installed; CI=true makes this fatal" >&2
    exit 1
else
    echo "SKIPPED: node is not installed (the terminal emulator's unit tests need Node 20+)" >&2
fi

# --- services: each backend's section starts what its tests need ---------

# (lease-docker: local test image)
# The Docker tests run on containerlease-test/busybox:latest, built locally
# from Debian's busybox-static (no registry here); they never pull.
step "local Docker test image (scripts/test-images.sh)"
if ! scripts/test-images.sh; then
    if [ "${CI:-}" = "true" ]; then
        echo "the Docker test image could not be built; CI=true makes this fatal" >&2
        exit 1
    fi
    echo "no Docker test image: the lease-docker tests that need Docker will print SKIPPED" >&2
fi

# (lease-swarm: a swarm manager)
# Makes sure the engine is a swarm manager: an existing swarm is used as it
# is; an engine in no swarm gets a single-node one (advertise 127.0.0.1),
# which the EXIT trap leaves again — only that one. Exports LEASE_TEST_SWARM.
# The plain Docker tests run on the same engine, in swarm mode.
step "swarm manager for the Swarm tests (scripts/swarm.sh)"
swarm_env="$(scripts/swarm.sh start)"
eval "$swarm_env"
swarm_prev_exit_trap="$(trap -p EXIT)"
swarm_prev_exit_trap="${swarm_prev_exit_trap#"trap -- "}"
swarm_prev_exit_trap="${swarm_prev_exit_trap%" EXIT"}"
trap "scripts/swarm.sh stop \"\${LEASE_TEST_SWARM_CREATED:-}\"; eval ${swarm_prev_exit_trap:-:}" EXIT

# (lease-store-redis: private Redis)
# Starts a private redis-server (installing Debian's if missing) and exports
# LEASE_TEST_REDIS_URL; stopped on exit, also when a step fails. The trap runs
# any EXIT trap set above as well.
step "private Redis (scripts/redis.sh)"
redis_env="$(scripts/redis.sh start)"
eval "$redis_env"
redis_prev_exit_trap="$(trap -p EXIT)"
redis_prev_exit_trap="${redis_prev_exit_trap#"trap -- "}"
redis_prev_exit_trap="${redis_prev_exit_trap%" EXIT"}"
trap "scripts/redis.sh stop \"\${LEASE_TEST_REDIS_DIR:-}\"; eval ${redis_prev_exit_trap:-:}" EXIT

# (lease-store-postgres)
# Starts a private PostgreSQL cluster (initdb into a temporary directory,
# its own loopback port; installing Debian's postgresql if missing) and
# exports LEASE_TEST_POSTGRES_URL and LEASE_TEST_POSTGRES_BIN; stopped on
# exit, also when a step fails. The trap runs any EXIT trap set above as well.
step "private PostgreSQL (scripts/postgres.sh)"
postgres_env="$(scripts/postgres.sh start)"
eval "$postgres_env"
postgres_prev_exit_trap="$(trap -p EXIT)"
postgres_prev_exit_trap="${postgres_prev_exit_trap#"trap -- "}"
postgres_prev_exit_trap="${postgres_prev_exit_trap%" EXIT"}"
trap "scripts/postgres.sh stop \"\${LEASE_TEST_POSTGRES_DIR:-}\"; eval ${postgres_prev_exit_trap:-:}" EXIT

# (lease-server: headless browser for the web UI test, tests/browser.rs)
# Installs Debian's chromium and chromium-driver if either is missing (once;
# a no-op when both are there). Without them the browser test prints
# SKIPPED locally; with CI=true a failed install is fatal.
step "headless Chromium for the web UI test (chromium, chromium-driver)"
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "chromium and chromedriver are installed"
else
    if apt_install chromium chromium-driver; then
        echo "installed chromium and chromium-driver"
    elif [ "${CI:-}" = "true" ]; then
        echo "chromium/chromium-driver could not be installed; CI=true makes this fatal" >&2
        exit 1
    else
        echo "no chromium/chromedriver: the browser test will print SKIPPED" >&2
    fi
fi

# (lease-docker: TLS to a tcp engine, tests/tls.rs) Debian's openssl makes
# the certificates and Debian's stunnel4 puts TLS with client certificates in
# front of the local engine's socket. Installed if missing; without them the
# TLS tests print SKIPPED locally; with CI=true a failed install is fatal.
step "openssl and stunnel4 for the Docker TLS test"
if command -v openssl >/dev/null 2>&1 && command -v stunnel4 >/dev/null 2>&1; then
    echo "openssl and stunnel4 are installed"
else
    if apt_install openssl stunnel4; then
        echo "installed openssl and stunnel4"
    elif [ "${CI:-}" = "true" ]; then
        echo "openssl/stunnel4 could not be installed; CI=true makes this fatal" >&2
        exit 1
    else
        echo "no openssl/stunnel4: the Docker TLS test will print SKIPPED" >&2
    fi
fi

# (lease-http, lease-server: OIDC sign-in) A real OpenID Connect provider
# (oidc-provider-mock from PyPI, pinned) in a venv under the user's cache,
# created once; exports LEASE_TEST_OIDC_PYTHON for the tests, which start one
# provider per test. Without python3/venv/pip the OIDC tests print SKIPPED
# locally; with CI=true the script fails here.
step "OIDC test provider (scripts/oidc-provider.sh)"
if ! oidc_env="$(scripts/oidc-provider.sh ensure)"; then
    echo "the OIDC test provider could not be installed; CI=true makes this fatal" >&2
    exit 1
fi
eval "$oidc_env"
if [ -z "${LEASE_TEST_OIDC_PYTHON:-}" ]; then
    if [ "${CI:-}" = "true" ]; then
        echo "LEASE_TEST_OIDC_PYTHON is not set; CI=true makes this fatal" >&2
        exit 1
    fi
    echo "no OIDC test provider: the OIDC tests will print SKIPPED" >&2
fi

# ---------------------------------------------------------------------------

# (deploy) The CI workflow is linted by actionlint, with shellcheck on its
# run: blocks (scripts/actionlint.sh: pinned, in a venv under ~/.cache, and
# Debian's shellcheck). deploy/'s unit and env file are checked by
# `cargo test -p lease-server --test deploy` in the step below, which needs
# systemd-analyze and systemd-sysusers: Debian's systemd is installed if they
# are missing (the tests verify the unit; nothing is started). Without them
# those tests print SKIPPED; with CI=true every part is required.
step "deploy: actionlint on .github/workflows, systemd-analyze for deploy/"
scripts/actionlint.sh
if ! command -v systemd-analyze >/dev/null 2>&1 || ! command -v systemd-sysusers >/dev/null 2>&1; then
    if apt_install systemd; then
        echo "installed Debian's systemd (for systemd-analyze verify)"
    elif [ "${CI:-}" = "true" ]; then
        echo "systemd-analyze could not be installed; CI=true makes this fatal" >&2
        exit 1
    else
        echo "no systemd-analyze: the deploy unit tests will print SKIPPED" >&2
    fi
fi

# (lease-reliability) The reliability suite's quick form runs here with the
# rest (quick is its default size); it needs nothing more than the test image
# and LEASE_TEST_REDIS_SERVER from the steps above. The long form, with the
# issue's counts and the slow #[ignore] tests: scripts/reliability.sh.
step "cargo test --workspace"
# Every failing test binary is reported, not only the first.
cargo test --workspace --all-features --no-fail-fast

# (lease-docker: no leftovers) Every test container carries
# io.containerlease.managed=true and a namespace starting with `test-`, and
# each test's guard removes them; anything still there is a leak: fail.
step "no test containers or networks left behind"
if docker version >/dev/null 2>&1; then
    leftovers="$(docker ps -a --filter label=io.containerlease.managed=true \
        --format '{{.ID}} {{.Names}} {{.Label "io.containerlease.namespace"}}' | awk '$3 ~ /^test-/')"
    if [ -n "$leftovers" ]; then
        printf 'test containers left behind (id, name, namespace):\n%s\n' "$leftovers" >&2
        exit 1
    fi
    # The same for Swarm services (lease-swarm: one per lease, labelled alike).
    if [ "$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = "true" ]; then
        leftover_services="$(docker service ls --filter label=io.containerlease.managed=true \
            --format '{{.ID}} {{.Name}}' | while read -r service_id service_name; do
                namespace="$(docker service inspect --format '{{index .Spec.Labels "io.containerlease.namespace"}}' "$service_id" 2>/dev/null || true)"
                case "$namespace" in test-*) echo "$service_id $service_name $namespace" ;; esac
            done)"
        if [ -n "$leftover_services" ]; then
            printf 'test services left behind (id, name, namespace):\n%s\n' "$leftover_services" >&2
            exit 1
        fi
    fi
    # The same for the namespace networks (lease-docker creates them on
    # first use; NamespaceGuard removes them with the containers).
    # A network with containers is a leak (fail). An empty one can be a
    # create the engine finished for a server a test had just killed, after
    # the test's guard swept, or one the engine will not remove because a
    # container killed mid-create left a stale endpoint on it: reported and
    # removed where the engine allows, not fatal.
    leftover_networks="$(docker network ls --filter label=io.containerlease.managed=true \
        --format '{{.ID}} {{.Name}} {{.Label "io.containerlease.namespace"}}' | awk '$3 ~ /^test-/')"
    leaked_networks=""
    while read -r network_id network_name _; do
        [ -n "$network_id" ] || continue
        if [ "$(docker network inspect --format '{{len .Containers}}' "$network_id" 2>/dev/null || echo 0)" != 0 ]; then
            leaked_networks+="$network_id $network_name"$'\n'
        else
            if docker network rm "$network_id" >/dev/null 2>&1; then
                echo "warning: empty test network $network_name was left (a create finished after its test's guard); removed" >&2
            else
                # Seen here: a container removed while the engine was still
                # creating it leaves a stale endpoint, and the engine then
                # refuses to remove the (empty) network.
                echo "warning: empty test network $network_name was left and the engine refuses to remove it (stale endpoint)" >&2
            fi
        fi
    done <<< "$leftover_networks"
    if [ -n "$leaked_networks" ]; then
        printf 'test networks with containers left behind (id, name):\n%s' "$leaked_networks" >&2
        exit 1
    fi
elif [ "${CI:-}" = "true" ]; then
    echo "Docker is not reachable; CI=true makes this fatal" >&2
    exit 1
fi

step "done"
