"""Rate limits per token through Envoy: requests and tokens per minute, concurrent streams.

Counters live in Redis in one-minute windows. A test that may straddle a window boundary
sends enough requests to cross the limit inside one window whatever the clock says.
"""

from __future__ import annotations

import time

import grpc
import pytest
import requests

from clawgate.chat.v1 import chat_service_pb2 as pb
from clawgate.chat.v1 import chat_service_pb2_grpc as pb_grpc
from tests.tenancy.conftest import CHAT_PATH, LIMITED_RPM, MODEL, STREAMS_MAX, Tenancy, unique


def assert_openai_429(reply: requests.Response) -> None:
    assert reply.status_code == 429, reply.text
    error = reply.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert int(reply.headers["retry-after"]) >= 1


def test_every_chat_response_carries_openai_rate_limit_headers(tenancy: Tenancy) -> None:
    reply = tenancy["alice"].chat(unique("hi"))  # default limits
    assert reply.status_code == 200, reply.text
    assert int(reply.headers["x-ratelimit-limit-requests"]) > 0
    assert int(reply.headers["x-ratelimit-remaining-requests"]) >= 0
    assert reply.headers["x-ratelimit-reset-requests"].endswith("s")
    assert int(reply.headers["x-ratelimit-limit-tokens"]) > 0
    streamed = tenancy["alice"].chat(unique("hi"), stream=True)
    assert streamed.status_code == 200 and "x-ratelimit-remaining-requests" in streamed.headers


def test_requests_per_minute(tenancy: Tenancy) -> None:
    limited = tenancy["limited"]
    remaining: list[int] = []
    for _ in range(2 * LIMITED_RPM + 1):  # crosses the limit within one window
        reply = limited.chat(unique("rpm"))
        if reply.status_code != 200:
            break
        remaining.append(int(reply.headers["x-ratelimit-remaining-requests"]))
    assert_openai_429(reply)
    assert reply.headers["x-ratelimit-limit-requests"] == str(LIMITED_RPM)
    assert reply.headers["x-ratelimit-remaining-requests"] == "0"
    assert "requests per minute" in reply.json()["error"]["message"]
    assert remaining[-1] == 0 and remaining == sorted(remaining, reverse=True)
    # Native gRPC: RESOURCE_EXHAUSTED; other tokens are not affected.
    message = pb.ChatMessage(role="user")
    message.content.string_value = "x"
    request = pb.CreateChatCompletionRequest(
        params=pb.ChatCompletionParams(model=MODEL, messages=[message], max_tokens=5)
    )
    md = (("authorization", f"Bearer {limited.token}"),)
    with grpc.insecure_channel(tenancy.stack.grpc_target) as channel:
        stub = pb_grpc.ChatServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failed:  # a new window may admit a few more
            for _ in range(LIMITED_RPM + 1):
                stub.CreateChatCompletion(request, metadata=md, timeout=10)
    assert failed.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert tenancy["bob"].chat(unique("other")).status_code == 200


def test_tokens_per_minute_are_charged_after_the_answer(tenancy: Tenancy) -> None:
    thrifty = tenancy["thrifty"]  # 1 token per minute: any answer spends it
    first = thrifty.chat(unique("tpm"))
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-limit-tokens"] == "1"
    # The charge lands when the call ends; wait for it, bounded.
    deadline = time.monotonic() + 10
    while (reply := thrifty.chat(unique("tpm"))).status_code == 200:
        assert time.monotonic() < deadline, "the answer's tokens were never charged"
    assert_openai_429(reply)
    assert "tokens per minute" in reply.json()["error"]["message"]
    assert reply.headers["x-ratelimit-remaining-tokens"] == "0"


def test_concurrent_streams(tenancy: Tenancy) -> None:
    streamer = tenancy["streamer"]
    cached = unique("short")
    assert streamer.chat(cached, max_tokens=1).status_code == 200
    slow = requests.patch(tenancy.standin + "/_standin/settings",
                          json={"token_delay_ms": 1000}, timeout=5)  # fmt: skip
    assert slow.status_code == 200, slow.text
    try:
        body = {"model": MODEL, "stream": True, "max_tokens": 30,
                "messages": [{"role": "user", "content": unique("long story")}]}  # fmt: skip
        headers = {"Authorization": f"Bearer {streamer.token}", "Cache-Control": "no-cache"}
        url = streamer.base + CHAT_PATH
        with requests.post(url, json=body, headers=headers, stream=True, timeout=60) as first:
            assert first.status_code == 200, first.text
            lines = first.iter_lines()  # kept: dropping it would close the stream
            # The stream is running: its first data frame (after any `: keep-alive`).
            assert next(line for line in lines if line.startswith(b"data: "))
            second = requests.post(url, json=body, headers=headers, timeout=30)
            assert_openai_429(second)
            assert f"{STREAMS_MAX} concurrent streams" in second.json()["error"]["message"]
            # A non-streaming request is not a stream: it still goes through (answered
            # from the cache, as the stand-in is busy with the stream).
            assert streamer.chat(cached, max_tokens=1).headers["x-cache"] == "HIT"
        # The first stream was closed by the client: its slot is freed (bounded wait).
        requests.patch(tenancy.standin + "/_standin/settings", json={"token_delay_ms": 5},
                       timeout=5)  # fmt: skip
        deadline = time.monotonic() + 10
        while (again := streamer.chat(unique("again"), stream=True)).status_code == 429:
            assert time.monotonic() < deadline, "the closed stream never released its slot"
        assert again.status_code == 200, again.text
    finally:
        requests.patch(tenancy.standin + "/_standin/settings", json={"token_delay_ms": 5},
                       timeout=5)  # fmt: skip
