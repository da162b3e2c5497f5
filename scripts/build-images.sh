#!/usr/bin/env bash
# `make images`: the project's images with podman and no registry: the debootstrapped base
# (deploy/base/build-base.sh), the gateway image installed from a host-built wheelhouse,
# Redis from Debian's redis-server. Builds run with --network none. Prints the image names
# as shell assignments (CLAWGATE_IMAGE=..., REDIS_IMAGE=...).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/podman-env.sh
tag=${CLAWGATE_IMAGE_TAG:-dev}
base=$(deploy/base/build-base.sh)
echo "images: base $base ready after ${SECONDS}s" >&2
pyver=$(podman run --rm --network none "$base" python3 -c "import platform; print(platform.python_version())")
wheels=$(scripts/wheelhouse.sh "$pyver")
echo "images: wheelhouse ready after ${SECONDS}s" >&2
rm -rf build/wheelhouse && mkdir -p build
cp -al "$wheels" build/wheelhouse 2>/dev/null || cp -a "$wheels" build/wheelhouse
trap 'rm -rf build/wheelhouse' EXIT
podman build -q --network none --build-arg BASE_IMAGE="$base" \
  --build-arg PIP_ARGS="--no-index --find-links /wheels" -t "localhost/clawgate:$tag" . >&2
podman build -q --network none --build-arg BASE_IMAGE="$base" \
  -t "localhost/clawgate-redis:$tag" deploy/redis >&2
echo "CLAWGATE_IMAGE=localhost/clawgate:$tag"
echo "REDIS_IMAGE=localhost/clawgate-redis:$tag"
