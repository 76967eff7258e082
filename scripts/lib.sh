#!/usr/bin/env bash
# Helpers shared by the service scripts (redis.sh, postgres.sh,
# actionlint.sh, oidc-provider.sh, test-images.sh, test.sh). Source it after
# setting LIB_NAME (the script's name in messages) and LIB_NEEDS (what CI
# requires, as in "CI=true: <LIB_NEEDS> is required") and, for scripts whose
# missing service only skips tests, LIB_SKIPS (what skips, e.g. "Redis tests").

# Prints a message on stderr, prefixed with the script's name.
log() { printf '%s: %s\n' "${LIB_NAME:-script}" "$*" >&2; }

# A missing service: fatal under CI=true, a printed skip (exit 0) otherwise.
fail_or_skip() {
    if [[ "${CI:-}" == "true" ]]; then
        log "ERROR: $* (CI=true: ${LIB_NEEDS:-this service} is required)"
        exit 1
    fi
    log "SKIPPED: $* — ${LIB_SKIPS:-its tests will skip}"
    exit 0
}

# Installs Debian packages with apt-get (sudo -n when not root), quietly.
# Tries without `apt-get update` first (the lists may be fresh), then with it.
# Returns non-zero when apt-get is missing or the install fails.
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || return 1
        sudo=(sudo -n)
    fi
    local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@")
    "${install[@]}" >/dev/null 2>&1 && return 0
    "${sudo[@]}" apt-get update -qq >&2 && "${install[@]}" >/dev/null
}
