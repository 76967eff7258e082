#!/usr/bin/env bash
# The one test command (README.md, .ci/run): format, lints, and every test of
# the workspace, doc tests included. It installs and starts what the tests
# need (the local Docker test image, a private Redis) and stops what it starts.
#
# CI=true turns a missing service into a failure instead of a printed skip.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

# --- services: each backend's section starts what its tests need ---------

# (lease-docker: local test image)

# (lease-store-redis: private Redis)

# ---------------------------------------------------------------------------

step "cargo test --workspace"
cargo test --workspace --all-features

step "done"
