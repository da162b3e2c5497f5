"""clients/node/example.js (@grpc/grpc-js + @grpc/proto-loader loading proto/) against the
live stack through Envoy's public port."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import requests

from clawgate.launcher.stack import Stack


def run_example(folder: Path, stack: Stack, token: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLAWGATE_TOKEN": token, "CLAWGATE_MODEL": "qwen3:32b"}
    return subprocess.run(
        ["node", "example.js", stack.grpc_target], cwd=folder, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_lists_models_creates_an_agent_and_streams_a_chat(node_client: Path, stack: Stack) -> None:
    result = run_example(node_client, stack, stack.token)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    auth = {"Authorization": f"Bearer {stack.token}"}
    rest_models = requests.get(stack.rest_url + "/api/v1/models", headers=auth, timeout=10).json()
    assert lines[0] == "models: " + ", ".join(m["id"] for m in rest_models["data"])

    agent_id, rest = lines[1].removeprefix("agent: ").split(" ", 1)
    name = rest.strip("()").split(",")[0]
    assert agent_id.startswith("agt_") and rest.endswith(", qwen3:32b)")
    streamed = "\n".join(lines[2:-2])
    assert lines[-2] == f"answered by: agent:{name}; finish_reason: stop"
    assert lines[-1] == f"deleted agent: {agent_id}"

    # The agent was really stored and then deleted in the registry.
    gone = requests.get(stack.rest_url + f"/api/v1/agents/{agent_id}", headers=auth, timeout=10)
    assert gone.status_code == 404

    # The same conversation over REST (the agent's model, prompt and defaults: temperature
    # 0, so the model's answer is reproducible) gives the same text: what the Node client
    # printed is the model's answer, chunk by chunk.
    same = {
        "model": "qwen3:32b",
        "temperature": 0,
        "max_tokens": 200,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Say hello to Node.js"},
        ],
    }
    reply = requests.post(
        stack.rest_url + "/api/v1/chat/completions", headers=auth, json=same, timeout=60
    )
    assert streamed and streamed == reply.json()["choices"][0]["message"]["content"]


def test_wrong_token_is_reported_with_the_grpc_status(node_client: Path, stack: Stack) -> None:
    result = run_example(node_client, stack, "cg-not-the-token")
    assert result.returncode == 1
    assert "error: UNAUTHENTICATED: unauthorized: gateway token mismatch" in result.stderr
