#!/usr/bin/env bash
# Fetches wheels of the project's runtime dependencies on the host (pip reaches PyPI here;
# image builds have no network) for the image's Python, and prints the folder.
# Usage: scripts/wheelhouse.sh PYTHON_VERSION (the base image's python3, e.g. 3.11.2).
# pip evaluates markers such as `python_full_version < "3.11.3"` with the Python it runs
# on, so it runs on the host's Debian python3 (the same package as in the debootstrapped
# base). Cached under ~/.cache/clawgate/wheelhouse/<key>, keyed by dependencies and target.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: $0 PYTHON_VERSION}
PY=${WHEELHOUSE_PYTHON:-/usr/bin/python3}
have=$($PY -c 'import platform; print(platform.python_version())')
if [ "$have" != "$target" ]; then
  echo "wheelhouse: $PY is Python $have but the image has $target; set WHEELHOUSE_PYTHON" >&2
  exit 1
fi
reqs=$($PY -c "import tomllib; print('\n'.join(['setuptools>=69', 'wheel', *tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']]))")
key=$(printf '%s\n' "$reqs" "$target $(uname -m) binary-only" | sha256sum | cut -c1-12)
dir=${CLAWGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clawgate}/wheelhouse/$key
if [ ! -f "$dir/.complete" ]; then
  rm -rf "$dir" && mkdir -p "$dir"
  echo "$reqs" > "$dir/requirements.txt"
  echo "fetching wheels for Python $target into $dir" >&2
  $PY -m pip download -q --disable-pip-version-check --only-binary=:all: \
    -d "$dir" -r "$dir/requirements.txt" 2> >(grep -v "^WARNING: Location" >&2)
  touch "$dir/.complete"
  # Keep only this key's wheelhouse.
  find "$(dirname "$dir")" -mindepth 1 -maxdepth 1 ! -name "$key" -exec rm -rf {} +
fi
echo "$dir"
