#!/usr/bin/env bash
# Make the offline base image lb-base:bookworm (python3, its venv module and
# tini on a minimal Debian 12) without pulling any image: debootstrap from the
# Debian mirror apt already uses, then `docker import`. Needs root, debootstrap
# and a Docker engine. Does nothing when the image exists (set
# LB_BASE_REBUILD=1 to rebuild it).
#
#   tests/docker/base-image.sh [IMAGE]      (default lb-base:bookworm)
#
# LB_DEBIAN_MIRROR overrides the mirror (default: the first Debian URI of
# /etc/apt/sources.list*, else http://deb.debian.org/debian).
set -euo pipefail

IMAGE=${1:-lb-base:bookworm}
SUITE=bookworm
PACKAGES=python3,python3-venv,tini

if [ -z "${LB_BASE_REBUILD:-}" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "base image $IMAGE: present"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "base image $IMAGE: missing, and debootstrap needs root" >&2
    exit 2
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "base image $IMAGE: missing, and debootstrap is not installed (apt-get install debootstrap)" >&2
    exit 2
fi

mirror=${LB_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    # one-line "deb URL suite ..." or deb822 "URIs: URL"; the security archive is not a mirror of the suite
    mirror=$(grep -hsE '^[[:space:]]*(deb[[:space:]]|URIs:)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        | grep -oE 'https?://[^[:space:]]+' | grep -E '/debian/?$' | grep -v security | head -n 1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

root=$(mktemp -d /var/tmp/lb-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "base image $IMAGE: debootstrap $SUITE from $mirror (minbase + $PACKAGES)"
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$mirror" >"$root.log" 2>&1; then
    tail -n 30 "$root.log" >&2
    echo "base image $IMAGE: debootstrap failed (full log: $root.log)" >&2
    exit 1
fi
rm -f "$root.log"
# no package lists or downloaded .debs in the image
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
tar -C "$root" --numeric-owner -c . \
    | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "base image $IMAGE: imported ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
