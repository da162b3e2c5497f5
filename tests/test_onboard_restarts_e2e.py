"""`clawgate onboard` under a crashing chat service (kill -9): restarts with backoff, a
budget over a sliding window, and a child that keeps failing is left down while Envoy,
agents and health keep serving; it comes back once it stops crashing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from tests.test_onboard_e2e import _clawgate, _env

T = TypeVar("T")
MAX_RESTARTS = 2


@dataclass
class Onboarded:
    process: subprocess.Popen[str]
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.env['CLAWGATE_PORT']}"

    @property
    def headers(self) -> dict[str, str]:
        token = (Path(self.env["CLAWGATE_STATE_DIR"]) / "token").read_text().split()[0]
        return {"Authorization": f"Bearer {token}"}

    def child(self, name: str) -> dict[str, Any]:
        path = Path(self.env["CLAWGATE_STATE_DIR"]) / "supervisor.json"
        try:
            children: dict[str, dict[str, Any]] = json.loads(path.read_text())["children"]
        except (OSError, ValueError, KeyError):
            return {}
        return children.get(name, {})


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 40.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def run_onboard(env: dict[str, str], cwd: Path, *args: str) -> Iterator[Onboarded]:
    """`clawgate onboard --demo <args>` until the block ends (then Ctrl-C)."""
    process = subprocess.Popen(
        _clawgate("onboard", "--demo", *args), env=env, cwd=cwd, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    run = Onboarded(process, env)

    def pump() -> None:  # keep reading, so the launcher never blocks on a full pipe
        assert process.stdout is not None
        for line in process.stdout:
            run.lines.append(line.rstrip())

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        wait_for("onboard to start", lambda: "Ctrl-C stops everything" in run.output, 90)
        yield run
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        reader.join(5)


@pytest.fixture
def onboarded(tmp_path: Path) -> Iterator[Onboarded]:
    env = _env(
        tmp_path,
        CLAWGATE_RESTART_MAX=str(MAX_RESTARTS),
        CLAWGATE_RESTART_WINDOW_S="300",
        CLAWGATE_RESTART_BACKOFF_S="0.1",
        CLAWGATE_RESTART_MAX_BACKOFF_S="0.5",
        CLAWGATE_RESTART_DOWN_RETRY_S="8",
    )
    with run_onboard(env, tmp_path) as run:
        yield run


def test_a_crash_looping_chat_is_left_down_while_the_rest_serves(onboarded: Onboarded) -> None:
    run = onboarded
    killed: set[int] = set()
    for _ in range(MAX_RESTARTS + 1):
        pid = wait_for(
            "chat running",
            lambda: (
                (c := run.child("chat")).get("state") == "running"
                and c.get("pid") not in killed
                and c.get("pid")
            ),
        )
        os.kill(int(pid), signal.SIGKILL)
        killed.add(int(pid))
    wait_for("chat left down", lambda: run.child("chat").get("state") == "down")
    assert "chat keeps failing" in run.output and "The other parts keep serving" in run.output

    # Envoy, the registry and health keep answering; the gateway process is still up.
    assert run.process.poll() is None
    agent = {"name": "survivor", "model": "qwen3:32b"}
    agents_url = run.base + "/api/v1/agents"
    created = requests.post(agents_url, headers=run.headers, json=agent, timeout=10)
    assert created.status_code == 200, created.text
    assert requests.get(run.base + "/api/v1/agents", headers=run.headers, timeout=10).ok

    def health_says_left_down() -> bool:  # health checks in the background, every second
        report = requests.get(run.base + "/api/v1/health", headers=run.headers, timeout=10)
        chat = next(c for c in report.json()["components"] if c["name"] == "chat")
        return (
            report.status_code == 503 and chat["status"] == "down" and "left down" in chat["detail"]
        )

    wait_for("health to report chat left down", health_says_left_down)
    models = requests.get(run.base + "/api/v1/models", headers=run.headers, timeout=10)
    assert models.status_code == 503, models.text

    # It stopped crashing: after the long backoff the launcher tries again, and chat serves.
    def chat_answers() -> bool:
        body = {"model": "qwen3:32b", "messages": [{"role": "user", "content": "back?"}]}
        reply = requests.post(run.base + "/api/v1/chat/completions", headers=run.headers,
                              json=body, timeout=10)  # fmt: skip
        return reply.status_code == 200

    wait_for("chat to come back", chat_answers, timeout=60)
    wait_for("the launcher to report it", lambda: "chat is back after being left" in run.output)
    assert run.child("chat")["state"] == "running"
    # Health reports are cached for a second: wait for a fresh one.
    wait_for("health ok", lambda: requests.get(run.base + "/api/v1/health", timeout=10).ok)
