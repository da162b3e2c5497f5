"""The prompt cache end to end: REST and gRPC through Envoy, the chat service, real Redis
and the stand-in ollama ("main"), which logs every request that reaches it.

Every test uses prompts with its own nonce, so entries and stand-in log records of other
tests never interfere; tests that flip stand-in switches or stop Redis restore them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
import pytest

from clawgate.chat.v1 import chat_service_pb2 as pb
from clawgate.chat.v1 import chat_service_pb2_grpc as pb_grpc
from clawgate.launcher.stack import Stack

CHAT_PATH = "/api/v1/chat/completions"
MODEL = "qwen3:32b"


@dataclass
class Reply:
    status: int
    x_cache: str | None
    body: dict[str, Any] | None  # JSON answers
    events: list[dict[str, Any]] | None  # SSE answers, without [DONE]
    done: bool  # the SSE stream ended with data: [DONE]

    def content(self) -> str:
        if self.body is not None:
            text: str = self.body["choices"][0]["message"]["content"]
            return text
        assert self.events is not None
        return "".join(
            c["choices"][0]["delta"].get("content") or "" for c in self.events if c["choices"]
        )

    def usage(self) -> dict[str, Any] | None:
        if self.body is not None:
            usage: dict[str, Any] | None = self.body.get("usage")
            return usage
        assert self.events is not None
        return next((c["usage"] for c in self.events if c.get("usage")), None)


class Gateway:
    """REST client of the stack plus the stand-in's control API."""

    def __init__(self, stack: Stack, session: aiohttp.ClientSession) -> None:
        self.stack = stack
        self.session = session
        self.standin = stack.standins["main"]
        self.nonce = uuid.uuid4().hex[:10]

    def request(self, question: str, **extra: Any) -> dict[str, Any]:
        """A chat request whose prompt carries this test's nonce."""
        return {
            "model": MODEL,
            "messages": [{"role": "user", "content": f"[{self.nonce}] {question}"}],
            "max_tokens": 32,
            **extra,
        }

    async def chat(
        self, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
    ) -> Reply:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        all_headers = {
            "Authorization": f"Bearer {self.stack.token}",
            "Content-Type": "application/json",
            **(headers or {}),
        }
        async with self.session.post(
            self.stack.rest_url + CHAT_PATH, data=data, headers=all_headers
        ) as reply:
            text = await reply.text()
            x_cache = reply.headers.get("x-cache")
            if reply.content_type == "text/event-stream":
                events, done = parse_sse(text)
                return Reply(reply.status, x_cache, None, events, done)
            return Reply(reply.status, x_cache, json.loads(text), None, False)

    async def upstream_calls(self) -> int:
        """Chat requests of this test that reached the stand-in."""
        async with self.session.get(f"{self.standin}/_standin/requests") as reply:
            records = (await reply.json())["requests"]
        return sum(
            1
            for r in records
            if "chat" in r["path"] and self.nonce in json.dumps(r["body"], ensure_ascii=False)
        )

    async def settings(self, **changes: Any) -> dict[str, Any]:
        async with self.session.patch(f"{self.standin}/_standin/settings", json=changes) as reply:
            assert reply.status == 200, await reply.text()
            current: dict[str, Any] = await reply.json()
            return current

    async def get(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.stack.token}"}
        async with self.session.get(self.stack.rest_url + path, headers=headers) as reply:
            assert reply.status == 200, await reply.text()
            return await reply.json()


def parse_sse(text: str) -> tuple[list[dict[str, Any]], bool]:
    events: list[dict[str, Any]] = []
    done = False
    for line in text.splitlines():
        if not line.startswith("data: "):
            continue
        data = line.removeprefix("data: ")
        if data == "[DONE]":
            done = True
        else:
            events.append(json.loads(data))
    return events, done


async def cache_ready(probe: Gateway) -> None:
    """Wait until the chat service uses the cache (an earlier test may have restarted Redis)."""
    deadline = time.monotonic() + 10
    while (await probe.chat(probe.request("warm-up"))).x_cache == "BYPASS":
        assert time.monotonic() < deadline, "the chat service keeps bypassing the cache"
        await asyncio.sleep(0.2)


@pytest.fixture
async def gateway(stack: Stack) -> AsyncIterator[Gateway]:
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await cache_ready(Gateway(stack, session))
        gw = Gateway(stack, session)
        before = await gw.settings()
        try:
            yield gw
        finally:
            await gw.settings(
                fail=None,
                fail_times=None,
                first_token_delay_ms=before["first_token_delay_ms"],
            )


async def test_second_identical_request_is_a_hit(gateway: Gateway) -> None:
    first = await gateway.chat(gateway.request("What is 2+2?", temperature=0.7))
    assert (first.status, first.x_cache) == (200, "MISS"), first.body
    # The same JSON with another key order, spacing and number format.
    again = json.dumps(
        {
            "temperature": 0.70,
            "max_tokens": 32.0,
            "messages": gateway.request("What is 2+2?")["messages"],
            "model": MODEL,
        },
        indent=3,
    ).encode()
    second = await gateway.chat(again)
    assert (second.status, second.x_cache) == (200, "HIT"), second.body
    assert second.content() == first.content()
    assert second.usage() == first.usage()  # the original token counts
    assert second.body is not None and first.body is not None
    assert second.body["object"] == "chat.completion"
    assert await gateway.upstream_calls() == 1

    # A semantic difference misses.
    other = await gateway.chat(gateway.request("What is 2+2?", temperature=0.2))
    assert other.x_cache == "MISS"
    assert await gateway.upstream_calls() == 2


async def test_json_answer_replays_as_a_stream(gateway: Gateway) -> None:
    stored = await gateway.chat(gateway.request("Name a colour."))
    assert stored.x_cache == "MISS"
    replay = await gateway.chat(
        gateway.request("Name a colour.", stream=True, stream_options={"include_usage": True})
    )
    assert (replay.status, replay.x_cache, replay.done) == (200, "HIT", True)
    assert replay.events is not None
    assert replay.events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert replay.events[0]["object"] == "chat.completion.chunk"
    finish = [c["choices"][0]["finish_reason"] for c in replay.events if c["choices"]]
    assert finish[-1] == stored.body["choices"][0]["finish_reason"]  # type: ignore[index]
    assert replay.content() == stored.content()
    assert replay.usage() == stored.usage()
    assert await gateway.upstream_calls() == 1


async def test_streamed_answer_replays_as_json(gateway: Gateway) -> None:
    stored = await gateway.chat(
        gateway.request("Name a fruit.", stream=True, stream_options={"include_usage": True})
    )
    assert (stored.x_cache, stored.done) == ("MISS", True)
    replay = await gateway.chat(gateway.request("Name a fruit."))
    assert (replay.status, replay.x_cache) == (200, "HIT")
    assert replay.content() == stored.content()
    assert replay.usage() == stored.usage()
    assert await gateway.upstream_calls() == 1


async def test_twenty_concurrent_identical_requests_make_one_upstream_call(
    gateway: Gateway,
) -> None:
    # A slow first token keeps the leader in flight while all twenty arrive.
    await gateway.settings(first_token_delay_ms=500)
    body = gateway.request("Tell me a short story.")
    replies = await asyncio.gather(*(gateway.chat(body) for _ in range(20)))
    assert all(r.status == 200 for r in replies)
    assert sorted(r.x_cache or "" for r in replies) == ["HIT"] * 19 + ["MISS"]
    assert len({r.content() for r in replies}) == 1
    assert await gateway.upstream_calls() == 1


async def test_cut_stream_is_not_stored(gateway: Gateway) -> None:
    await gateway.settings(fail="cut")
    body = gateway.request("Count to ten.", stream=True)
    cut = await gateway.chat(body)
    assert not cut.done  # the client saw the stream fail
    await gateway.settings(fail=None)

    whole = await gateway.chat(body)
    assert (whole.x_cache, whole.done) == ("MISS", True)
    assert await gateway.upstream_calls() >= 2
    assert (await gateway.chat(body)).x_cache == "HIT"


@pytest.mark.parametrize("mode", ["oom", "busy"])
async def test_upstream_errors_are_not_stored(gateway: Gateway, mode: str) -> None:
    await gateway.settings(fail=mode)
    body = gateway.request(f"Explain {mode}.")
    failed = await gateway.chat(body)
    assert failed.status >= 400 and failed.body is not None and "error" in failed.body
    failed_calls = await gateway.upstream_calls()
    await gateway.settings(fail=None)

    fresh = await gateway.chat(body)
    assert (fresh.status, fresh.x_cache) == (200, "MISS")
    assert await gateway.upstream_calls() == failed_calls + 1


async def test_cache_control_headers(gateway: Gateway) -> None:
    body = gateway.request("Pick a number.")
    first = await gateway.chat(body, {"Cache-Control": "no-store"})
    assert first.x_cache == "MISS"
    second = await gateway.chat(body)
    assert second.x_cache == "MISS"  # no-store: nothing was kept
    assert (await gateway.chat(body)).x_cache == "HIT"
    refreshed = await gateway.chat(body, {"Cache-Control": "no-cache"})
    assert refreshed.x_cache == "MISS"  # skipped the lookup...
    assert await gateway.upstream_calls() == 3
    assert (await gateway.chat(body)).x_cache == "HIT"  # ...and stored the fresh answer


async def test_grpc_clients_get_x_cache_and_can_skip_the_cache(
    stack: Stack, gateway: Gateway
) -> None:
    params = pb.ChatCompletionParams(model=MODEL, max_tokens=32)
    message = params.messages.add(role="user")
    message.content.string_value = f"[{gateway.nonce}] Say hello over gRPC."
    request = pb.CreateChatCompletionRequest(params=params)
    auth = ("authorization", f"Bearer {stack.token}")

    async with grpc.aio.insecure_channel(stack.grpc_target) as channel:
        stub = pb_grpc.ChatServiceStub(channel)

        async def call(*metadata: tuple[str, str]) -> tuple[str | None, pb.ChatCompletion]:
            rpc = stub.CreateChatCompletion(request, metadata=(auth, *metadata), timeout=30)
            reply = await rpc
            headers = dict(await rpc.initial_metadata())
            value = headers.get("x-cache")
            return (value.decode() if isinstance(value, bytes) else value), reply

        miss, first = await call()
        hit, second = await call()
        skipped, _ = await call(("cache-control", "no-cache"))

    assert (miss, hit, skipped) == ("MISS", "HIT", "MISS")
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.usage == first.usage
    assert await gateway.upstream_calls() == 2


async def test_stats_and_purge_over_rest(gateway: Gateway) -> None:
    body = gateway.request("Something to purge.", model="llama3.2:latest")
    await gateway.chat(body)
    assert (await gateway.chat(body)).x_cache == "HIT"
    stats = await gateway.get("/api/v1/cache/stats")
    assert stats["enabled"] is True and stats["redis_available"] is True
    assert stats["hits"] >= 1 and stats["stores"] >= 1
    assert stats["hit_latency_p99_ms"] >= stats["hit_latency_p50_ms"] > 0

    headers = {"Authorization": f"Bearer {gateway.stack.token}"}
    url = gateway.stack.rest_url + "/api/v1/cache?model=llama3.2:latest"
    async with gateway.session.delete(url, headers=headers) as reply:
        assert reply.status == 200, await reply.text()
        assert (await reply.json())["deleted"] >= 1
    assert (await gateway.chat(body)).x_cache == "MISS"


async def test_redis_killed_mid_test_then_back(stack: Stack, gateway: Gateway) -> None:
    stored = gateway.request("Before Redis goes away.")
    assert (await gateway.chat(stored)).x_cache == "MISS"
    assert (await gateway.chat(stored)).x_cache == "HIT"

    await asyncio.to_thread(stack.stop, "redis")
    try:
        for question in ("While Redis is down.", "Still down."):
            reply = await gateway.chat(gateway.request(question))
            assert (reply.status, reply.x_cache) == (200, "BYPASS"), reply.body
            assert reply.content()
        during = await gateway.chat(stored)  # answered by the model, still correct
        assert (during.status, during.x_cache) == (200, "BYPASS")
    finally:
        await asyncio.to_thread(stack.start, "redis")

    # Caching resumes without restarting the chat service.
    body = gateway.request("After Redis is back.")
    deadline = time.monotonic() + 10
    status = "BYPASS"
    while status == "BYPASS" and time.monotonic() < deadline:
        status = (await gateway.chat(body)).x_cache or ""
        if status == "BYPASS":
            await asyncio.sleep(0.2)
    assert status == "MISS"
    assert (await gateway.chat(body)).x_cache == "HIT"
