#!/usr/bin/env bash
# Make the Debian base image that deploy/Dockerfile's FROM names, locally:
# debootstrap (minbase) + podman import, tagged with that same name, so the
# build needs no registry and the Dockerfile still builds unchanged with
# Docker anywhere else (where the tag is pulled instead).
#
#   scripts/base-image.sh [TAG]     default: the Dockerfile's first FROM
#
# Does nothing when an image with that tag exists already.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TAG=${1:-$(awk '/^FROM /{print $2; exit}' "$ROOT/deploy/Dockerfile")}
SUITE=${TAG#*:}
SUITE=${SUITE%-slim}
# An unqualified name means Docker Hub's library/: tag it as Docker would see it.
case $TAG in
    */*) FULL=$TAG ;;
    *) FULL=docker.io/library/$TAG ;;
esac

say() { printf '[base-image] %s\n' "$*"; }

if podman image exists "$FULL"; then
    say "$FULL exists, reusing it"
    exit 0
fi

# The mirror this machine's apt uses (it may be the only one reachable).
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
: "${mirror:=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)}"
MIRROR=${DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian}}

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
say "debootstrap $SUITE from $MIRROR (~30 s)"
debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 ||
    { tail -20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"

# What the official -slim image does: the same apt sources, no docs or
# locales from later installs, no apt caches, no machine identity.
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
DPKG
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
: >"$rootfs/etc/machine-id"

say "importing as $FULL"
tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$FULL" >/dev/null
podman image ls "$FULL"
