"""The peers Clawgate is measured against, installed once into a cache outside the repo.

  LiteLLM proxy   PyPI `litellm[proxy]==V` in its own venv:  <cache>/litellm-V
  Portkey gateway npm `@portkey-ai/gateway@V` in its own node_modules: <cache>/portkey-V

Both are started on a free loopback port in front of the same stand-in ollama, with the
settings that make them comparable to Clawgate (no database, logging at errors only).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from clawgate.launcher.processes import Child, StartError, free_port
from clawgate.launcher.stack import http_ok, write_json

DEFAULT_CACHE = Path(
    os.environ.get("CLAWGATE_BENCH_CACHE", Path.home() / ".cache" / "clawgate-bench")
)
# Newest litellm[proxy] whose extras resolve on PyPI today (1.108+ pin unpublished
# litellm-proxy-extras builds); Portkey's only two npm releases.
LITELLM_VERSION = "1.106.12"
PORTKEY_VERSIONS = ("1.15.2", "1.9.8")

# Node has no "listen on loopback" switch for Portkey's server: this preload makes every
# listen() without a host bind 127.0.0.1 instead of every interface.
_LOOPBACK_MJS = """\
import net from "node:net";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "object" && args[0] !== null && args[0].host === undefined) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  } else if (typeof args[0] === "number" || /^\\d+$/.test(String(args[0]))) {
    if (args[1] === undefined) args[1] = "127.0.0.1";
    else if (typeof args[1] !== "string") args.splice(1, 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
"""


class PeerUnavailable(RuntimeError):
    """A peer could not be installed or started; the table says why instead of a number."""


def _run(argv: list[str], log: Path, timeout: float) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        try:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PeerUnavailable(f"{' '.join(argv[:4])}...: {exc}") from exc
    if done.returncode != 0:
        raise PeerUnavailable(f"{' '.join(argv[:4])}... exited {done.returncode}; see {log}")


def ensure_litellm(cache: Path, version: str) -> Path:
    """The venv holding litellm[proxy]==version (installed on first use)."""
    venv = cache / f"litellm-{version}"
    if (venv / "bin" / "litellm").exists():
        return venv
    print(f"installing litellm[proxy]=={version} into {venv} (once)...", file=sys.stderr)
    log = cache / f"litellm-{version}-install.log"
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], log, 120)
    _run([str(venv / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={version}"], log, 900)
    return venv


def ensure_portkey(cache: Path, version: str) -> Path:
    """The folder whose node_modules holds @portkey-ai/gateway@version."""
    folder = cache / f"portkey-{version}"
    if _portkey_entry(folder).exists():
        return folder
    print(f"installing @portkey-ai/gateway@{version} into {folder} (once)...", file=sys.stderr)
    folder.mkdir(parents=True, exist_ok=True)
    argv = [
        "npm",
        "install",
        "--prefix",
        str(folder),
        "--no-audit",
        "--no-fund",
        f"@portkey-ai/gateway@{version}",
    ]
    _run(argv, cache / f"portkey-{version}-install.log", 600)
    if not _portkey_entry(folder).exists():
        raise PeerUnavailable(f"@portkey-ai/gateway@{version} installed no build/start-server.js")
    return folder


def _portkey_entry(folder: Path) -> Path:
    return folder / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"


def node_version() -> str:
    try:
        return subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except OSError:
        return "node not found"


@contextlib.contextmanager
def litellm(
    cache: Path, version: str, upstream_v1: str, model: str, logs: Path
) -> Iterator[tuple[str, Child, dict[str, str]]]:
    """A LiteLLM proxy (one worker, in-memory response cache, a master key made up for the
    run) in front of `upstream_v1`; yields its base URL, process and request headers."""
    venv = ensure_litellm(cache, version)
    port = free_port()
    config = {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {
                    "model": f"openai/{model}",
                    "api_base": upstream_v1,
                    "api_key": "ollama",
                },
            }
        ],
        "litellm_settings": {
            "cache": True,
            "cache_params": {"type": "local"},
            "telemetry": False,
        },
    }
    # JSON is valid YAML, which is what `litellm --config` reads.
    path = write_json(logs / f"litellm-{port}.yaml", config)
    master_key = "sk-" + secrets.token_hex(16)  # it refuses to start without one
    env = {
        "LITELLM_MASTER_KEY": master_key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the cost map at start-up
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "NO_DOCS": "True",
    }
    argv = [
        str(venv / "bin" / "litellm"),
        "--config",
        str(path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
        "--telemetry",
        "False",
    ]
    url = f"http://127.0.0.1:{port}"
    child = Child(f"litellm-{version}", argv, env=env, log_path=logs / f"litellm-{version}.log")
    with _running(child, url + "/health/liveliness", 120):
        yield url, child, {"Authorization": f"Bearer {master_key}"}


@contextlib.contextmanager
def portkey(cache: Path, version: str, logs: Path) -> Iterator[tuple[str, Child]]:
    """Portkey's open-source gateway on node; yields its base URL and process."""
    folder = ensure_portkey(cache, version)
    preload = cache / "loopback.mjs"
    preload.write_text(_LOOPBACK_MJS, encoding="utf-8")
    port = free_port()
    argv = [
        "node",
        "--import",
        str(preload),
        str(_portkey_entry(folder)),
        f"--port={port}",
        "--headless",
    ]
    url = f"http://127.0.0.1:{port}"
    log = logs / f"portkey-{version}.log"
    # No NODE_ENV=production: it would silence the errors the notes quote from the log.
    child = Child(f"portkey-{version}", argv, cwd=str(folder), log_path=log)
    with _running(child, url + "/", 60):
        yield url, child


def portkey_headers(upstream_v1: str) -> dict[str, str]:
    """Route a Portkey request to the stand-in as an OpenAI-compatible provider."""
    return {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": upstream_v1,
        "Authorization": "Bearer ollama",
    }


PORTKEY_CACHE_CONFIG = json.dumps({"cache": {"mode": "simple"}})


@contextlib.contextmanager
def _running(child: Child, ready_url: str, timeout: float) -> Iterator[Child]:
    try:
        child.start()
    except OSError as exc:  # node missing, say
        raise PeerUnavailable(f"{child.name} did not start: {exc}") from exc
    try:
        try:
            child.wait_ready(lambda: http_ok(ready_url, timeout=1.0), timeout=timeout)
        except StartError as exc:
            reason = str(exc).splitlines()[0]
            raise PeerUnavailable(f"{child.name} did not start: {reason}") from exc
        yield child
    finally:
        child.stop()
