"""One stack for the plugin and tool tests: the suite's gateway with plugins enabled (the
shipped ones, the example package from examples/plugin-audit and test plugins, both
installed with pip into a directory on the services' PYTHONPATH), built-in tools and an
MCP stdio server."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from clawgate.common.auth import Authenticator
from clawgate.launcher.processes import Child, free_port, port_open
from clawgate.launcher.stack import Stack, local_plan
from tests.stack_config import STANDIN_MODELS, gateway_config

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (ROOT / "examples" / "plugin-audit", Path(__file__).parent / "fixture_plugins")
HANG_TIMEOUT_MS = 300
MCP_SERVER = Path(__file__).parent / "mcp_server.py"


@dataclass
class PluginStack:
    stack: Stack
    restricted_token: str
    audit_log: Path

    @property
    def url(self) -> str:
        return self.stack.rest_url + "/api/v1"

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.stack.token}"}

    def chat(self, body: dict[str, Any], token: str | None = None) -> requests.Response:
        return requests.post(
            self.url + "/chat/completions", json=body, headers=self.headers(token), timeout=30
        )

    def upstream_requests(self) -> list[dict[str, Any]]:
        reply = requests.get(self.stack.standins["main"] + "/_standin/requests", timeout=10)
        records: list[dict[str, Any]] = reply.json()["requests"]
        return records


def install_plugins(target: Path) -> None:
    """What a user does: pip-install the plugin packages (here into one directory). From
    copies, so the build leaves nothing in the source tree."""
    sources = target.parent / "plugin-sources"
    for package in PACKAGES:
        shutil.copytree(package, sources / package.name, ignore=shutil.ignore_patterns("build"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), *(str(sources / p.name) for p in PACKAGES)],
        check=True,
        capture_output=True,
    )  # fmt: skip


@pytest.fixture(scope="session")
def plugin_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginStack]:
    state = tmp_path_factory.mktemp("plugin-stack")
    site = state / "site"
    install_plugins(site)
    restricted = "cg-restricted-" + secrets.token_hex(8)
    audit_log = state / "audit.jsonl"
    http_port = free_port()
    http_mcp = Child(
        "mcp-http",
        [sys.executable, str(MCP_SERVER), "--http", str(http_port)],
        log_path=state / "mcp-http.log",
    )

    def config(urls: dict[str, str]) -> dict[str, Any]:
        return {
            **gateway_config(urls),
            "plugins": {
                "pii-redactor": {},
                "model-allowlist": {
                    "settings": {"tokens": {Authenticator(()).token_id(restricted): ["qwen3:8b"]}}
                },
                "test-raise": {},
                "test-raise-skipped": {"onError": "skip"},
                "test-hang": {"timeoutMs": HANG_TIMEOUT_MS},
                "test-modify": {"settings": {"from": "apple", "to": "orange"}},
                "test-tools": {},
                "audit": {"onError": "skip", "settings": {"path": str(audit_log)}},
                "disabled-and-not-installed": {"enabled": False},
            },
            "tools": {
                "maxSteps": 4,
                "builtin": {"current_time": {}, "calculator": {}},
            },
            "mcpServers": {
                "notes": {
                    "command": [sys.executable, str(MCP_SERVER)],
                    "timeoutSeconds": 20,
                    "allow": ["word_length", "crash"],
                },
                "remote": {
                    "url": f"http://127.0.0.1:{http_port}/mcp",
                    "timeoutSeconds": 20,
                    "allow": ["word_length"],
                },
            },
        }

    plan = local_plan(state, STANDIN_MODELS, config, extra_env={"PYTHONPATH": str(site)})
    with plan.token_file.open("a", encoding="utf-8") as tokens:
        tokens.write(restricted + "\n")
    running = Stack(plan)
    try:
        http_mcp.start().wait_ready(lambda: port_open("127.0.0.1", http_port))
        running.start()
        yield PluginStack(running, restricted, audit_log)
    finally:
        running.stop()
        http_mcp.stop()


@pytest.fixture
def env(plugin_stack: PluginStack) -> PluginStack:
    return plugin_stack
