"""Failures in-process: the four common failures told apart, retries, failover, time
limits, mid-stream errors and cancellation reaching the worker."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import grpc
import pytest

from clawgate.chat.v1 import chat_service_pb2 as pb
from tests.chat.conftest import (
    NO_CACHE,
    ChatEnv,
    failure_of,
    http_call,
    http_failure,
    http_request,
    params,
    sse_chunks,
    user,
    with_settings,
)

LLAMA = {"model": "llama3.2:latest", "messages": user("hello")}


async def test_unknown_model_is_404_naming_configured_models(chat: ChatEnv) -> None:
    failed = await http_failure(chat, {**LLAMA, "model": "gpt-5"})
    assert (failed.code, failed.http_status) == (grpc.StatusCode.NOT_FOUND, 404)
    assert failed.error["param"] == "model" and failed.error["code"] == "model_not_found"
    assert "gpt-5" in failed.error["message"] and "qwen3:32b" in failed.error["message"]
    assert failed.error["type"] == "not_found_error"


async def test_model_not_pulled_says_ollama_pull(chat: ChatEnv) -> None:
    failed = await http_failure(chat, {**LLAMA, "model": "ghost:7b"})
    assert failed.http_status == 404 and failed.error["code"] == "model_not_pulled"
    assert "ollama pull ghost:7b" in failed.error["message"]
    assert chat.workers.urls["main"] in failed.error["message"]


async def test_worker_down_is_503_naming_the_url_after_retries(chat: ChatEnv) -> None:
    await chat.workers.patch("main", fail="down")
    failed = await http_failure(chat, LLAMA)
    assert (failed.code, failed.http_status) == (grpc.StatusCode.UNAVAILABLE, 503)
    assert failed.error["code"] == "upstream_unreachable"
    assert chat.workers.urls["main"] in failed.error["message"]
    assert failed.retry_after is not None
    assert len(await chat.workers.requests("main")) == 1 + chat.pipeline.settings.max_retries


async def test_busy_worker_is_retried_then_succeeds(chat: ChatEnv) -> None:
    await chat.workers.patch("main", fail="busy", fail_times=1)
    messages, _ = await http_call(chat, LLAMA)
    assert messages[0].content_type == "application/json"
    statuses = [r["http_status"] for r in await chat.workers.requests("main")]
    assert statuses == [503, 200]


async def test_busy_worker_that_stays_busy_is_503_with_retry_after(chat: ChatEnv) -> None:
    await chat.workers.patch("main", fail="busy")
    failed = await http_failure(chat, LLAMA)
    assert failed.http_status == 503 and failed.error["code"] == "upstream_busy"
    assert "lower max_tokens or use a smaller model" in failed.error["message"]
    assert failed.retry_after == "2"


async def test_out_of_memory_advises_smaller_model_without_retrying(chat: ChatEnv) -> None:
    await chat.workers.patch("main", fail="oom")
    failed = await http_failure(chat, LLAMA)
    assert failed.http_status == 503 and failed.error["code"] == "insufficient_gpu_memory"
    assert "lower max_tokens or use a smaller model" in failed.error["message"]
    assert len(await chat.workers.requests("main")) == 1  # the only worker: no point retrying


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({**LLAMA, "messages": user("word " * 40000)}, "messages", "context_length_exceeded"),
        ({**LLAMA, "max_tokens": 4096}, "max_tokens", "integer_above_max_value"),
        ({**LLAMA, "temperature": 2.1}, "temperature", "decimal_above_max_value"),
        ({**LLAMA, "messages": []}, "messages", "empty_array"),
    ],
)
async def test_bad_requests_never_reach_the_worker(
    chat: ChatEnv, body: dict[str, object], param: str, code: str
) -> None:
    failed = await http_failure(chat, body)
    assert (failed.code, failed.http_status) == (grpc.StatusCode.INVALID_ARGUMENT, 400)
    assert (failed.error["param"], failed.error["code"]) == (param, code)
    assert await chat.workers.requests("main") == []


async def test_malformed_json_is_400(chat: ChatEnv) -> None:
    failed = await http_failure(chat, b'{"model": "llama3.2:latest", "messages": [')
    assert failed.http_status == 400 and failed.error["type"] == "invalid_request_error"


async def test_down_worker_fails_over_and_is_avoided_afterwards(chat: ChatEnv) -> None:
    await chat.workers.patch("pool-a", fail="down")
    for _ in range(3):
        await http_call(chat, {"model": "qwen3:8b", "messages": user("failover")})
    assert len(await chat.workers.requests("pool-a")) == 1  # then skipped while down
    assert len(await chat.workers.requests("pool-b")) == 3


async def test_load_spreads_by_fewest_in_flight(chat: ChatEnv) -> None:
    await chat.workers.patch("pool-a", token_delay_ms=20)
    await chat.workers.patch("pool-b", token_delay_ms=20)
    body = {"model": "qwen3:8b", "messages": user("spread"), "max_tokens": 10}
    await asyncio.gather(*(http_call(chat, body) for _ in range(6)))
    counts = [len(await chat.workers.requests(n)) for n in ("pool-a", "pool-b")]
    assert counts == [3, 3]


async def test_failure_mid_stream_is_an_sse_error_without_done(chat: ChatEnv) -> None:
    await chat.workers.patch("main", fail="cut", cut_after=3)
    messages, _ = await http_call(chat, {**LLAMA, "stream": True})
    chunks, last = sse_chunks(messages)
    assert last != "[DONE]"
    assert chunks[-1]["error"]["code"] == "upstream_incomplete"
    assert set(chunks[-1]["error"]) == {"message", "type", "param", "code"}
    assert any(c.get("choices") and c["choices"][0]["delta"].get("content") for c in chunks[:-1])
    assert len(await chat.workers.requests("main")) == 1  # the client had data: no retry


async def test_json_answer_cut_half_way_is_retried(chat: ChatEnv) -> None:
    # Nothing reaches a JSON client before the whole answer, so a cut answer is retried.
    await chat.workers.patch("main", fail="cut", cut_after=3, fail_times=1)
    messages, _ = await http_call(chat, LLAMA)
    body = json.loads(messages[0].data)
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    assert [r["status"] for r in await chat.workers.requests("main")] == ["error", "completed"]


async def test_typed_stream_failure_mid_stream_ends_with_status(chat: ChatEnv) -> None:
    await chat.workers.patch("main", fail="cut", cut_after=2)
    call = chat.stub.StreamChatCompletion(
        pb.StreamChatCompletionRequest(params=params("llama3.2:latest", "cut me")),
        metadata=NO_CACHE,
    )
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for chunk in call:
            received.append(chunk)
    assert received and caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert failure_of(caught.value).error["code"] == "upstream_incomplete"


async def test_first_token_timeout_is_not_retried_on_the_same_busy_worker(chat: ChatEnv) -> None:
    # A worker still evaluating the prompt would only queue the retry behind itself.
    with_settings(chat, first_token_timeout_s=0.2, max_retries=1)
    await chat.workers.patch("main", first_token_delay_ms=3000)
    failed = await http_failure(chat, LLAMA)
    assert failed.http_status == 504 and failed.error["code"] == "upstream_timeout"
    assert failed.error["message"].startswith("No first token from any worker")
    assert chat.workers.urls["main"] in failed.error["message"]
    records = await chat.workers.requests("main")
    assert len(records) == 1
    await asyncio.sleep(0.2)
    assert {r["status"] for r in await chat.workers.requests("main")} == {"cancelled"}


async def test_request_deadline_header_limits_the_whole_answer(chat: ChatEnv) -> None:
    await chat.workers.patch("main", token_delay_ms=100)
    headers = (*NO_CACHE, ("x-request-timeout", "0.5"))
    failed = await http_failure(chat, LLAMA, headers)
    assert failed.http_status == 504 and failed.error["code"] == "request_timeout"
    messages, _ = await http_call(chat, {**LLAMA, "stream": True}, headers)
    chunks, last = sse_chunks(messages)
    assert last != "[DONE]" and chunks[-1]["error"]["code"] == "request_timeout"
    bad = await http_failure(chat, LLAMA, (*NO_CACHE, ("x-request-timeout", "soon")))
    assert bad.http_status == 400 and bad.error["param"] == "x-request-timeout"


async def test_grpc_deadline_ends_the_upstream_request(chat: ChatEnv) -> None:
    await chat.workers.patch("main", token_delay_ms=100)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await chat.stub.CreateChatCompletion(
            pb.CreateChatCompletionRequest(params=params("llama3.2:latest", "slow")),
            metadata=NO_CACHE,
            timeout=0.5,
        )
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.sleep(0.3)
    (record,) = await chat.workers.requests("main")
    assert record["status"] == "cancelled"


async def wait_for_status(chat: ChatEnv, status: str, within_s: float = 2.0) -> dict[str, object]:
    deadline = time.monotonic() + within_s
    while True:
        records = await chat.workers.requests("main")
        if records and records[-1]["status"] == status:
            return records[-1]
        assert time.monotonic() < deadline, records
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("method", ["http", "typed"])
async def test_client_going_away_cancels_the_upstream_request(chat: ChatEnv, method: str) -> None:
    await chat.workers.patch("main", token_delay_ms=50)
    if method == "http":
        body = {**LLAMA, "messages": user("long"), "stream": True}
        call: Any = chat.stub.CreateChatCompletionHttp(http_request(body), metadata=NO_CACHE)
    else:
        call = chat.stub.StreamChatCompletion(
            pb.StreamChatCompletionRequest(params=params("llama3.2:latest", "long")),
            metadata=NO_CACHE,
        )
    seen = 0
    async for _ in call:
        seen += 1
        if seen == 3:
            break
    await wait_for_status(chat, "running")
    cancelled_at = time.time()
    call.cancel()
    record = await wait_for_status(chat, "cancelled")
    finished_at = record["finished_at"]
    assert isinstance(finished_at, float)
    # The stand-in saw the disconnect promptly (the target is 100 ms; allow slack for CI).
    print(f"cancel reached the worker after {(finished_at - cancelled_at) * 1000:.1f} ms")
    assert finished_at - cancelled_at < 1.0
    assert len(await chat.workers.requests("main")) == 1
