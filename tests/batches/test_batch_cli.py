"""`clawgate batch submit FILE --wait` against the gateway: output JSONL next to the input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from clawgate.launcher.stack import Stack
from tests.batches.helpers import line


def run_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLAWGATE_URL": stack.rest_url, "CLAWGATE_TOKEN": stack.token}
    return subprocess.run(
        [sys.executable, "-m", "clawgate.cli", *args],
        env=env, capture_output=True, text=True, timeout=40,
    )  # fmt: skip


def test_batch_submit_waits_and_writes_the_output(batch_stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "prompts.jsonl"
    rows = [line("ok-1", "cli one"), line("ok-2", "cli two"), line("bad", "x", model="nope:1b")]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_cli(batch_stack, "batch", "submit", str(source), "--wait", "--interval", "0.2")
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout and "3/3 (1 failed)" in result.stderr
    output = [json.loads(x) for x in (tmp_path / "prompts.output.jsonl").read_text().splitlines()]
    assert sorted(r["custom_id"] for r in output) == ["ok-1", "ok-2"]
    errors = (tmp_path / "prompts.output.errors.jsonl").read_text().splitlines()
    assert [json.loads(x)["custom_id"] for x in errors] == ["bad"]


def test_batch_submit_reports_invalid_lines(batch_stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "broken.jsonl"
    source.write_text("not json\n")
    result = run_cli(batch_stack, "batch", "submit", str(source))
    assert result.returncode == 1
    assert "failed" in result.stdout and "line 1:" in result.stdout
