#!/usr/bin/env bash
# Installs what `make compose-test` needs when missing: podman with runc (crun can't run
# on hybrid cgroups), debootstrap for the offline base image. podman-compose comes from
# PyPI into the project venv (Debian's 1.0.3 is too old). Exits 0 when all is present.
set -euo pipefail
need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# netavark (podman's network stack) needs iptables and fails with "No such file" without it.
command -v iptables >/dev/null 2>&1 || need+=(iptables)
# The wheelhouse is fetched with Debian's python3 (the same Python as in the images).
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  "${need[@]}" uidmap fuse-overlayfs netavark aardvark-dns >/dev/null
