"""Building input files and waiting for batches, with the official `openai` SDK."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import openai
from openai.types import Batch

MODEL = "qwen3:8b"  # served by two stand-in workers (pool-a, pool-b)


def line(custom_id: str, content: str, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": [{"role": "user", "content": content}], **body},
    }


def submit(client: openai.OpenAI, lines: list[dict[str, Any]] | str) -> Batch:
    text = lines if isinstance(lines, str) else "\n".join(json.dumps(x) for x in lines) + "\n"
    upload = client.files.create(file=("input.jsonl", io.BytesIO(text.encode())), purpose="batch")
    return client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def wait_for(
    client: openai.OpenAI, batch_id: str, done: Any = None, timeout_s: float = 90.0
) -> Batch:
    """Polls until `done(batch)` (default: the batch ended)."""
    ended = {"completed", "failed", "cancelled", "expired"}
    check = done or (lambda b: b.status in ended)
    deadline = time.monotonic() + timeout_s
    while True:
        batch = client.batches.retrieve(batch_id)
        if check(batch):
            return batch
        assert time.monotonic() < deadline, f"batch stuck: {batch}"
        time.sleep(0.1)


def jsonl(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    text = client.files.content(file_id).text
    return [json.loads(row) for row in text.splitlines() if row.strip()]
