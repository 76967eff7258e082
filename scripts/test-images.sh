#!/usr/bin/env bash
# Builds the local Docker image the lease-docker tests and the offline catalog
# (examples/catalog.local.toml) use: containerlease-test/busybox:latest.
#
# This machine's Docker engine has no registry access, so nothing is pulled:
# the image is a minimal root filesystem made from Debian's statically linked
# busybox (package busybox-static, installed with apt-get if it is missing)
# and loaded with `docker import`.
#
# Idempotent: does nothing when the image is already present. Exits non-zero
# with a reason when Docker or busybox cannot be had; scripts/test.sh decides
# whether that is fatal (CI=true) or a printed skip (locally).
set -euo pipefail

IMAGE="${CONTAINERLEASE_TEST_IMAGE:-containerlease-test/busybox:latest}"

say() { printf 'test-images: %s\n' "$*" >&2; }
# apt_install
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

if ! command -v docker >/dev/null 2>&1; then
    say "the docker CLI is not installed"
    exit 1
fi
if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    say "the Docker engine is not reachable (DOCKER_HOST=${DOCKER_HOST:-unset})"
    exit 1
fi
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    say "$IMAGE is present"
    exit 0
fi

# A static busybox: Debian's busybox-static installs it as /bin/busybox.
is_static() { [ -x "$1" ] && ! ldd "$1" >/dev/null 2>&1; }
busybox=/bin/busybox
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' \
    || ! is_static "$busybox"; then
    say "installing busybox-static"
    if ! apt_install busybox-static; then
        say "busybox-static is not installed and apt-get could not install it"
        exit 1
    fi
fi
if ! is_static "$busybox"; then
    say "$busybox is missing or not statically linked"
    exit 1
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT

mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev,home,var/tmp}
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
cp "$busybox" "$rootfs/bin/busybox"
# Every applet busybox has (sh, sleep, echo, cat, ls, ps, top, vi, wget, …)
# as a symlink in /bin.
for applet in $("$rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] && continue
    ln -sf busybox "$rootfs/bin/$applet"
done
cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP

say "importing $IMAGE"
tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -c . | docker import \
    --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'WORKDIR /root' \
    --change 'CMD ["sh"]' \
    --message 'containerlease test image: static busybox' \
    - "$IMAGE" >/dev/null
docker image inspect "$IMAGE" >/dev/null
say "$IMAGE is ready"
