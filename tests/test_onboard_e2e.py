"""`clawgate onboard` (what `make up` runs) brings the stack up, and Ctrl-C stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from clawgate.common.services import NAMES, SERVICES
from clawgate.launcher.processes import free_port, free_ports


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    envoy, admin, redis, *service_ports = free_ports(3 + len(SERVICES))
    return {
        **os.environ,
        "CLAWGATE_STATE_DIR": str(tmp / "state"),
        "CLAWGATE_PORT": str(envoy),
        "CLAWGATE_ADMIN_PORT": str(admin),
        **{s.addr_env: f"127.0.0.1:{p}" for s, p in zip(SERVICES, service_ports, strict=True)},
        # Nothing listens there: onboard must start its own Redis.
        "CLAWGATE_REDIS_URL": f"redis://127.0.0.1:{redis}/0",
        **extra,
    }


def _clawgate(*args: str) -> list[str]:
    return [sys.executable, "-m", "clawgate.cli", *args]


@pytest.fixture
def onboarded(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], list[str]]]:
    env = _env(tmp_path, **getattr(request, "param", {}))
    args = ["onboard", "--demo"] if "CLAWGATE_OLLAMA_URL" not in env else ["onboard"]
    process = subprocess.Popen(
        _clawgate(*args), env=env, cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    for line in process.stdout:
        lines.append(line.rstrip())
        if (
            line.startswith(("Ctrl-C stops everything", "cannot start"))
            or time.monotonic() > deadline
        ):
            break
    try:
        yield process, env, lines
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def test_token_before_first_onboard_says_what_to_do(tmp_path: Path) -> None:
    result = subprocess.run(
        _clawgate("token"), env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "clawgate onboard" in result.stderr


def test_onboard_demo_runs_every_endpoint_and_stops_cleanly(
    onboarded: tuple[subprocess.Popen[str], dict[str, str], list[str]],
) -> None:
    process, env, lines = onboarded
    output = "\n".join(lines)
    assert "Clawgate is up" in output, output
    assert "demo mode" in output
    token = subprocess.run(
        _clawgate("token"), env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert token in output  # the first run generated it and printed it
    assert oct((Path(env["CLAWGATE_STATE_DIR"]) / "token").stat().st_mode & 0o777) == "0o600"
    base = f"http://127.0.0.1:{env['CLAWGATE_PORT']}"
    console = f"{base}/?token={token}"
    assert f"console  : {console}" in output  # the URL a newcomer opens
    page = requests.get(console, timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert requests.get(base + "/api/v1/health", timeout=10).json()["status"] == "ok"
    headers = {"Authorization": f"Bearer {token}"}
    reply = requests.post(
        base + "/api/v1/chat/completions",
        headers=headers,
        json={"model": "qwen3:32b", "messages": [{"role": "user", "content": "你好"}],
              "max_tokens": 20},
        timeout=30,
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert reply.json()["object"] == "chat.completion"
    created = requests.post(
        base + "/api/v1/agents", headers=headers,
        json={"name": "onboard-agent", "model": "qwen3:32b"}, timeout=10,
    )  # fmt: skip
    assert created.status_code == 200, created.text
    # The CLI finds the URL and token onboard saved (no CLAWGATE_PORT: the saved URL wins).
    cli_env = {k: v for k, v in env.items() if k != "CLAWGATE_PORT"}
    models = subprocess.run(_clawgate("models", "-q"), env=cli_env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert models.returncode == 0, models.stderr
    assert "agent:onboard-agent" in models.stdout.split()

    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, rest
    for part in ("envoy", *NAMES, "redis", "standin:demo"):
        assert f"{part}: exit 0" in rest, rest


@pytest.mark.parametrize(
    "onboarded", [{"CLAWGATE_OLLAMA_URL": f"http://127.0.0.1:{free_port()}/v1"}], indirect=True
)
def test_onboard_without_ollama_says_so_and_offers_demo(
    onboarded: tuple[subprocess.Popen[str], dict[str, str], list[str]],
) -> None:
    _, env, lines = onboarded
    output = "\n".join(lines)
    assert "no model server answers at" in output and "--demo" in output, output
    assert "Clawgate is up" in output
    base = f"http://127.0.0.1:{env['CLAWGATE_PORT']}"
    reply = requests.get(base + "/api/v1/health", timeout=10)
    assert reply.status_code == 503 and reply.json()["status"] == "down"
