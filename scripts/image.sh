#!/usr/bin/env bash
# `make image`: build deploy/Dockerfile into sahara-api:<sahara version> and
# sahara-api:latest with podman, no Docker daemon needed. Installs podman,
# buildah, runc and debootstrap when missing and makes the Debian base image
# locally (scripts/base-image.sh). Layers are cached between runs.
#
# When CA_BUNDLE exists (default: this machine's CA bundle) it is handed to
# pip as a build secret, for HTTPS through an intercepting proxy; it is never
# stored in the image.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${IMAGE:-sahara-api}
VERSION=$(sed -n 's/^sahara==//p' "$ROOT/requirements/runtime.txt")
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
APT_PACKAGES=(podman buildah runc debootstrap uidmap)

"$ROOT/scripts/stack.sh" packages "${APT_PACKAGES[@]}"

"$ROOT/scripts/base-image.sh"

secret=()
[ -s "$CA_BUNDLE" ] && secret=(--secret "id=cacert,src=$CA_BUNDLE")
# --format docker: the OCI format has no HEALTHCHECK.
# --pull=never: the base is local (made above); nothing comes from a registry.
podman build --format docker --pull=never "${secret[@]}" \
    -f "$ROOT/deploy/Dockerfile" -t "$IMAGE:$VERSION" -t "$IMAGE:latest" "$ROOT"
podman image ls "$IMAGE:$VERSION"
