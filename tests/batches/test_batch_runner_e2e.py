"""The batch runner: cancel mid-way, a chat service killed mid-batch, and interactive
latency while a batch runs (the stand-in's per-token delay makes lines take time)."""

from __future__ import annotations

import signal
import statistics
import time
import uuid

import openai

from clawgate.launcher.stack import Stack
from tests.batches.helpers import MODEL, jsonl, line, submit, wait_for


def unique_lines(count: int, **body: object) -> list[dict[str, object]]:
    tag = uuid.uuid4().hex[:8]  # no answer of an earlier test is in the cache
    return [line(f"c-{i}", f"{tag} question {i}", **body) for i in range(count)]


def answered_ids(client: openai.OpenAI, file_id: str | None) -> list[str]:
    return [row["custom_id"] for row in jsonl(client, file_id)]


def test_cancel_mid_way_keeps_what_finished(client: openai.OpenAI) -> None:
    lines = unique_lines(60)
    batch = submit(client, lines)
    wait_for(client, batch.id, lambda b: b.request_counts.completed >= 2)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    batch = wait_for(client, batch.id)
    assert batch.status == "cancelled" and batch.cancelled_at and batch.cancelling_at
    counts = batch.request_counts
    assert counts is not None and counts.total == 60
    assert 2 <= counts.completed < 60  # stopped before the end, kept what finished
    done = answered_ids(client, batch.output_file_id)
    assert len(done) == counts.completed
    not_run = jsonl(client, batch.error_file_id)
    assert all(row["error"]["code"] == "batch_cancelled" for row in not_run)
    # every line is either answered or reported as not run, once
    assert sorted(done + [row["custom_id"] for row in not_run]) == sorted(
        str(x["custom_id"]) for x in lines
    )
    assert client.batches.retrieve(batch.id).request_counts == counts  # nothing ran after
    try:
        client.batches.cancel(batch.id)
        raise AssertionError("an ended batch cannot be cancelled")
    except openai.ConflictError as error:
        assert "can no longer be cancelled" in str(error)


def test_chat_killed_mid_batch_answers_every_line_once(
    batch_stack: Stack, client: openai.OpenAI
) -> None:
    lines = unique_lines(40)
    batch = submit(client, lines)
    wait_for(client, batch.id, lambda b: b.request_counts.completed >= 3)
    batch_stack.children["chat"].signal(signal.SIGKILL)  # no chance to tidy up
    batch_stack.stop("chat")
    batch_stack.start("chat")
    batch_stack.wait_envoy_healthy(("chat",))
    batch = wait_for(client, batch.id)
    assert batch.status == "completed", batch
    assert batch.request_counts is not None
    errors = jsonl(client, batch.error_file_id)
    assert (batch.request_counts.completed, batch.request_counts.failed) == (40, 0), errors
    answered = answered_ids(client, batch.output_file_id)
    assert sorted(answered) == sorted(str(x["custom_id"]) for x in lines)  # each exactly once
    assert batch.error_file_id is None


def test_interactive_latency_holds_while_a_batch_runs(client: openai.OpenAI) -> None:
    def interactive_p50(samples: int = 9) -> float:
        took = []
        for _ in range(samples):
            started = time.perf_counter()
            client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": f"interactive {uuid.uuid4().hex}"}],
                max_tokens=24,
                extra_headers={"cache-control": "no-cache, no-store"},
            )
            took.append(time.perf_counter() - started)
        return statistics.median(took)

    interactive_p50(3)  # warm up connections
    alone = interactive_p50()
    batch = submit(client, unique_lines(200, max_tokens=24))
    wait_for(client, batch.id, lambda b: b.request_counts.completed >= 4)
    with_batch = interactive_p50()
    during = client.batches.retrieve(batch.id)
    assert during.request_counts is not None
    assert during.request_counts.completed < 200, "the batch ended before the measurement"
    client.batches.cancel(batch.id)
    print(f"interactive p50: alone {alone * 1000:.0f} ms, with a batch {with_batch * 1000:.0f} ms")
    assert with_batch <= 1.5 * alone, (alone, with_batch)
    wait_for(client, batch.id)
