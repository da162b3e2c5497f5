"""The shipped Postman collection and `Clawdbot Local` environment, run by newman against
the live stack: every request's test script passes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from clawgate.launcher.stack import Stack
from tests.clients.conftest import POSTMAN

COLLECTION = POSTMAN / "clawgate.postman_collection.json"
ENVIRONMENT = POSTMAN / "clawdbot-local.postman_environment.json"


def newman(tools: Path, report: Path, base_url: str, api_key: str) -> dict[str, Any]:
    """Run the collection as shipped; only the environment's URL and key are set."""
    result = subprocess.run(
        ["node_modules/.bin/newman", "run", str(COLLECTION), "-e", str(ENVIRONMENT),
         "--env-var", f"base_url={base_url}", "--env-var", f"api_key={api_key}",
         "--reporters", "cli,json", "--reporter-json-export", str(report),
         "--timeout-request", "60000", "--color", "off"],
        cwd=tools, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert report.is_file(), result.stdout + result.stderr
    run: dict[str, Any] = json.loads(report.read_text())["run"]
    run["exit_code"], run["output"] = result.returncode, result.stdout + result.stderr
    return run


def _requests(items: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for item in items:
        names += _requests(item["item"]) if "item" in item else [item["name"]]
    return names


def test_environment_is_clawdbot_local() -> None:
    env = json.loads(ENVIRONMENT.read_text())
    assert env["name"] == "Clawdbot Local"
    values = {v["key"]: v["value"] for v in env["values"]}
    assert values == {"base_url": "http://localhost:8000", "api_key": "", "model": "qwen3:32b"}


def test_collection_runs_green(postman_tools: Path, stack: Stack, tmp_path: Path) -> None:
    run = newman(postman_tools, tmp_path / "report.json", stack.rest_url, stack.token)
    assert run["exit_code"] == 0, run["output"]
    stats = run["stats"]
    assert stats["assertions"]["failed"] == 0 and stats["requests"]["failed"] == 0
    collection = json.loads(COLLECTION.read_text())
    executed = [e["item"]["name"] for e in run["executions"]]
    assert executed == _requests(collection["item"])  # every request ran, in order
    # Every request has its own test script, and each asserted something.
    tested = {e["item"]["name"] for e in run["executions"] if e.get("assertions")}
    assert tested == set(executed)
    assert stats["assertions"]["total"] >= 2 * len(executed)


def test_collection_fails_against_a_wrong_token(
    postman_tools: Path, stack: Stack, tmp_path: Path
) -> None:
    """The scripts check real answers: with a wrong key, authenticated requests fail."""
    run = newman(postman_tools, tmp_path / "report.json", stack.rest_url, "cg-wrong-key")
    assert run["exit_code"] != 0
    failed = {
        e["item"]["name"]
        for e in run["executions"]
        if any(a.get("error") for a in e.get("assertions", []))
    }
    assert {"List models", "Chat completion", "Create agent"} <= failed
    assert "Health (no token)" not in failed and "OpenAPI document" not in failed
    assert "Wrong token (401)" not in failed
