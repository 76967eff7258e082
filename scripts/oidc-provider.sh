#!/usr/bin/env bash
# A real OpenID Connect provider for the sign-in tests (oidc-provider-mock
# from PyPI, pinned), in a venv of its own under the user's cache.
#
#   eval "$(scripts/oidc-provider.sh ensure)"   # prints `export LEASE_TEST_OIDC_PYTHON=…`
#
# ensure: creates the venv once (${XDG_CACHE_HOME:-$HOME/.cache}/containerlease/oidc-venv)
# with `pip install oidc-provider-mock==0.3.4`, checks that the module imports,
# and prints the variable the tests read (lease-testkit's oidc helper starts a
# provider per test with that python). If it cannot be had it prints nothing
# and the OIDC tests skip with a reason, unless CI=true, where it fails.
set -euo pipefail

VERSION="0.3.4"
LIB_NAME=oidc-provider.sh LIB_NEEDS="the OIDC provider" LIB_SKIPS="the OIDC tests will skip"
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

ensure() {
    local venv="${XDG_CACHE_HOME:-$HOME/.cache}/containerlease/oidc-venv"
    local python="$venv/bin/python"
    if [[ -x "$python" ]] && "$python" -c "import oidc_provider_mock" 2>/dev/null &&
        [[ "$("$python" -m pip show oidc-provider-mock 2>/dev/null | sed -n 's/^Version: //p')" == "$VERSION" ]]; then
        printf 'export LEASE_TEST_OIDC_PYTHON=%q\n' "$python"
        return
    fi
    local base
    base="$(command -v python3 || true)"
    [[ -n "$base" ]] || fail_or_skip "python3 is not installed"
    mkdir -p "$(dirname "$venv")"
    rm -rf "$venv"
    if ! "$base" -m venv "$venv" >&2; then
        fail_or_skip "cannot create a Python venv in $venv (Debian: apt-get install python3-venv)"
    fi
    if ! "$python" -m pip install --quiet --disable-pip-version-check "oidc-provider-mock==$VERSION" >&2; then
        rm -rf "$venv"
        fail_or_skip "pip install oidc-provider-mock==$VERSION failed"
    fi
    "$python" -c "import oidc_provider_mock" || fail_or_skip "oidc_provider_mock does not import"
    log "installed oidc-provider-mock $VERSION in $venv"
    printf 'export LEASE_TEST_OIDC_PYTHON=%q\n' "$python"
}

case "${1:-}" in
ensure) ensure ;;
*)
    echo "usage: $0 ensure" >&2
    exit 2
    ;;
esac
