#!/usr/bin/env bash
# Builds the offline base image (Debian bookworm + python3 + redis-server) with debootstrap
# and imports it into podman; prints the image name. Cached by what it contains: the rootfs
# tarball under ~/.cache/clawgate/base/, the image as localhost/clawgate-base:<key>.
# Usage: deploy/base/build-base.sh   (needs root, debootstrap, podman; CONTAINERS_CONF set)
set -euo pipefail
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# python3-venv: the images install into a venv (Debian's python is externally managed).
INCLUDE=ca-certificates,python3,python3-venv,redis-server
# The key names what the rootfs holds; bump LAYOUT when the rootfs is made differently.
LAYOUT=1
key=$(echo "$SUITE $MIRROR $INCLUDE $LAYOUT" | sha256sum | cut -c1-12)
image=localhost/clawgate-base:$key
cache=${CLAWGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clawgate}/base
tarball=$cache/rootfs-$key.tar

if podman image exists "$image"; then echo "$image"; exit 0; fi
mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  echo "debootstrap $SUITE into $rootfs (a few minutes; log: $cache/debootstrap.log)" >&2
  if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$rootfs" "$MIRROR" \
      > "$cache/debootstrap.log" 2>&1; then
    tail -20 "$cache/debootstrap.log" >&2
    exit 1
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
fi
podman import --change 'CMD ["/bin/bash"]' "$tarball" "$image" >&2
# Keep only this key's rootfs and base image: older ones are never used again.
find "$cache" -maxdepth 1 -name 'rootfs-*.tar' ! -name "rootfs-$key.tar" -delete
podman images --format '{{.Repository}}:{{.Tag}}' localhost/clawgate-base \
  | grep -vx "$image" | xargs -r podman rmi -f >/dev/null 2>&1 || true
echo "$image"
