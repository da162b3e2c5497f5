"""OpenAI's Batch API through Envoy, driven by the official `openai` SDK."""

from __future__ import annotations

import collections
import io
import time
from typing import Any

import openai
import pytest
import requests

from clawgate.launcher.stack import Stack
from tests.batches.helpers import MODEL, jsonl, line, submit, wait_for


def test_batch_runs_to_completed_with_output_by_custom_id(
    batch_stack: Stack, client: openai.OpenAI
) -> None:
    lines = [line(f"q-{i}", f"batch question {i}") for i in range(6)]
    lines.append(line("same-a", "identical question"))
    lines.append(line("same-b", "identical question"))
    lines.append(line("bad-model", "hi", model="no-such-model:1b"))
    lines.append(line("bad-body", "hi", temperature="hot"))
    batch = submit(client, lines)
    assert batch.status == "in_progress"
    assert batch.request_counts is not None and batch.request_counts.total == len(lines)

    batch = wait_for(client, batch.id)
    assert batch.status == "completed", batch
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (8, 2)
    assert batch.completed_at and batch.finalizing_at and batch.in_progress_at

    output = {row["custom_id"]: row for row in jsonl(client, batch.output_file_id)}
    assert set(output) == {f"q-{i}" for i in range(6)} | {"same-a", "same-b"}
    for i in range(6):
        row = output[f"q-{i}"]
        assert row["error"] is None and row["id"].startswith("batch_req_")
        assert row["response"]["status_code"] == 200
        body = row["response"]["body"]
        assert body["object"] == "chat.completion" and body["model"] == MODEL
        # the stand-in's answer restates the prompt: each answer belongs to its line
        assert f"batch question {i}" in body["choices"][0]["message"]["content"]
    same = [output[c]["response"]["body"]["choices"][0]["message"] for c in ("same-a", "same-b")]
    assert same[0] == same[1]  # identical lines: one answer (cache / single-flight)

    errors = {row["custom_id"]: row for row in jsonl(client, batch.error_file_id)}
    assert set(errors) == {"bad-model", "bad-body"}
    assert errors["bad-model"]["response"]["status_code"] == 404
    assert errors["bad-model"]["response"]["body"]["error"]["code"] == "model_not_found"
    assert errors["bad-body"]["response"]["status_code"] == 400
    assert errors["bad-body"]["response"]["body"]["error"]["param"] == "temperature"

    auth = {"Authorization": f"Bearer {batch_stack.token}"}
    metrics = requests.get(batch_stack.rest_url + "/metrics", headers=auth, timeout=10).text
    counted = {
        state: sum(
            float(row.split()[-1])
            for row in metrics.splitlines()
            if row.startswith("clawgate_batch_lines_total{") and f'state="{state}"' in row
        )
        for state in ("completed", "failed")
    }
    assert counted["completed"] >= 8 and counted["failed"] >= 2
    assert "clawgate_batch_lines_running" in metrics

    # The health report shows the batch work too (checked in the background: wait a round).
    def health_batches() -> dict[str, Any]:
        report = requests.get(batch_stack.rest_url + "/api/v1/health", headers=auth, timeout=10)
        return dict(report.json().get("batches") or {})

    deadline = time.monotonic() + 15
    while (
        int((found := health_batches()).get("finished_lines", {}).get("completed", 0)) < 8
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert int(found["finished_lines"]["completed"]) >= 8 and "active" in found


def test_invalid_input_lines_fail_the_batch_with_line_numbers(client: openai.OpenAI) -> None:
    good = line("ok", "hello")
    text = "\n".join(
        [
            '{"custom_id": "ok", "method": "POST", "url": "/v1/chat/completions",'
            ' "body": {"model": "qwen3:8b", "messages": []}}',
            "not json",
            '{"custom_id": "ok", "method": "POST", "url": "/v1/chat/completions", "body": {}}',
            '{"method": "POST", "url": "/v1/chat/completions", "body": {}}',
            '{"custom_id": "x", "method": "GET", "url": "/v1/chat/completions", "body": {}}',
            '{"custom_id": "y", "method": "POST", "url": "/v1/embeddings", "body": {}}',
        ]
    )
    assert good  # the first line is valid; the others each break one rule
    batch = submit(client, text)
    assert batch.status == "failed" and batch.failed_at
    assert batch.errors is not None and batch.errors.data is not None
    found = [(e.line, e.code) for e in batch.errors.data]
    assert found == [
        (2, "invalid_json_line"),
        (3, "duplicate_custom_id"),
        (4, "missing_required_parameter"),
        (5, "invalid_method"),
        (6, "invalid_url"),
    ]


def test_files_get_content_delete_and_errors(batch_stack: Stack, client: openai.OpenAI) -> None:
    data = b'{"custom_id": "a"}\n'
    upload = client.files.create(file=("mine.jsonl", io.BytesIO(data)), purpose="batch")
    assert (upload.filename, upload.bytes, upload.purpose) == ("mine.jsonl", len(data), "batch")
    assert client.files.retrieve(upload.id).id == upload.id
    assert client.files.content(upload.id).content == data
    assert client.files.delete(upload.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(upload.id)

    url = batch_stack.rest_url + "/api/v1/files"
    auth = {"Authorization": f"Bearer {batch_stack.token}"}
    reply = requests.post(url, headers=auth, files={"file": ("a.jsonl", data)},
                          data={"purpose": "fine-tune"}, timeout=10)  # fmt: skip
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "purpose"
    reply = requests.post(url, headers=auth, json={"purpose": "batch"}, timeout=10)
    assert reply.status_code == 400 and "multipart/form-data" in reply.json()["error"]["message"]
    reply = requests.post(url, files={"file": ("a.jsonl", data)}, data={"purpose": "batch"},
                          timeout=10)  # fmt: skip
    assert reply.status_code == 401
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    with pytest.raises(openai.BadRequestError):
        client.batches.create(input_file_id="", endpoint="/v1/embeddings",  # type: ignore[arg-type]
                              completion_window="24h")  # fmt: skip


def test_list_batches_pages_with_after_and_limit(client: openai.OpenAI) -> None:
    made = [submit(client, [line(f"l-{i}", "list me")]).id for i in range(3)]
    first = client.batches.list(limit=2)
    assert len(first.data) == 2 and first.has_more
    second = client.batches.list(limit=2, after=first.data[-1].id)
    seen = [b.id for b in first.data] + [b.id for b in second.data]
    assert seen[:3] == made[::-1]  # newest first
    assert len(seen) == len(set(seen))
    every = [b.id for b in client.batches.list(limit=2)]  # the SDK follows the cursor
    assert set(made) <= set(every)
    assert collections.Counter(every).most_common(1)[0][1] == 1
