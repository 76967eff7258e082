#!/usr/bin/env bash
# The reliability suite (issue 8, crate lease-reliability) in its long form:
# the issue's counts (LEASE_RELIABILITY=long) and the slow tests marked
# #[ignore] (e.g. crash recovery with the server's default settings), one
# test at a time so the figures are not skewed by each other.
#
#   scripts/reliability.sh                 # every target of the suite
#   scripts/reliability.sh --test crash    # one target (extra args go to cargo test)
#
# Like scripts/test.sh it builds the local Docker test image
# (scripts/test-images.sh) and starts a private Redis (scripts/redis.sh,
# stopped on exit); the tests start their own redis-servers from its binary.
# The quick form runs in scripts/test.sh (`cargo test --workspace`).
#
# Figures: with LEASE_FIGURES=1 (set here) each test prints
# `FIGURE name=value` lines; they are collected at the end and the whole
# output is kept in target/reliability-logs/<UTC time>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "local Docker test image (scripts/test-images.sh)"
if ! scripts/test-images.sh; then
    if [ "${CI:-}" = "true" ]; then
        echo "the Docker test image could not be built; CI=true makes this fatal" >&2
        exit 1
    fi
    echo "no Docker test image: the reliability tests will print SKIPPED" >&2
fi

step "private Redis (scripts/redis.sh)"
redis_env="$(scripts/redis.sh start)"
eval "$redis_env"
trap 'scripts/redis.sh stop "${LEASE_TEST_REDIS_DIR:-}"' EXIT

step "cargo build -p lease-server (the binary under test)"
cargo build -q -p lease-server

logs="${CARGO_TARGET_DIR:-target}/reliability-logs"
mkdir -p "$logs"
log="$logs/$(date -u +%Y%m%dT%H%M%SZ).log"

step "cargo test -p lease-reliability (LEASE_RELIABILITY=long), log: $log"
status=0
LEASE_RELIABILITY=long LEASE_FIGURES=1 \
    cargo test -p lease-reliability "$@" -- --include-ignored --nocapture --test-threads=1 \
    2>&1 | tee "$log" || status=$?

step "figures"
grep -ohE '^FIGURE [^ ]+' "$log" | sed -E 's/^FIGURE //' || true
grep -E '^test .* \.\.\. |^test result:' "$log" || true
exit "$status"
