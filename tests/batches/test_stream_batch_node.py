"""clients/node/batch.js: the streaming batch from Node.js through Envoy's public port."""

from __future__ import annotations

import os
import subprocess
import uuid

from clawgate.launcher.stack import Stack
from tests.batches.helpers import MODEL
from tests.clients.conftest import NODE, npm_project


def test_node_streaming_batch_answers_every_prompt(batch_stack: Stack) -> None:
    folder = npm_project(NODE)
    tag = uuid.uuid4().hex[:8]
    prompts = [f"{tag}n{i}" for i in range(6)]
    env = {**os.environ, "CLAWGATE_TOKEN": batch_stack.token, "CLAWGATE_MODEL": MODEL}
    result = subprocess.run(
        ["node", "batch.js", batch_stack.grpc_target], cwd=folder, env=env,
        input="\n".join(prompts) + "\n", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    answers = {}
    for row in result.stdout.splitlines():
        custom_id, status, text = row.split(" ", 2)
        answers[custom_id] = (status, text)
    assert set(answers) == {f"line-{i + 1}" for i in range(6)}
    for i, prompt in enumerate(prompts):
        status, text = answers[f"line-{i + 1}"]
        assert status == "200" and prompt in text


def test_node_streaming_batch_reports_a_bad_token(batch_stack: Stack) -> None:
    folder = npm_project(NODE)
    env = {**os.environ, "CLAWGATE_TOKEN": "cg-wrong", "CLAWGATE_MODEL": MODEL}
    result = subprocess.run(
        ["node", "batch.js", batch_stack.grpc_target], cwd=folder, env=env,
        input="hello\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and "error: 16" in result.stderr  # UNAUTHENTICATED
