"""The chat service in-process: the real servicer behind the gateway interceptor on a real
grpc.aio server, real stand-in ollama workers on free ports, and the real Redis cache."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
import pytest
import redis.asyncio as aioredis

from clawgate.chat.v1 import chat_service_pb2 as pb
from clawgate.chat.v1 import chat_service_pb2_grpc as pb_grpc
from clawgate.common.auth import Authenticator
from clawgate.common.config import CacheSettings, ChatSettings, Config, parse_providers
from clawgate.common.errors import ERROR_JSON_KEY, HTTP_STATUS_KEY, RETRY_AFTER_KEY
from clawgate.common.server import GatewayInterceptor
from services.chat.cache import PromptCache
from services.chat.main import upstream_session
from services.chat.models import ModelCatalogue
from services.chat.pipeline import Pipeline
from services.chat.servicer import ChatServicer
from services.chat.workers import WorkerPool
from services.ollama_standin import Settings, StandinServer
from tests.stack_config import STANDIN_MODELS, gateway_config

TOKEN = "cg-test-chat-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
NO_CACHE = (*AUTH, ("cache-control", "no-cache, no-store"))

SETTINGS = ChatSettings(
    request_timeout_s=30.0,
    first_token_timeout_s=10.0,
    max_retries=2,
    retry_backoff_s=0.02,
    connect_timeout_s=1.0,
)


@dataclass
class Workers:
    """The stand-in ollama workers by name ("main", "pool-a", "pool-b")."""

    urls: dict[str, str]
    http: aiohttp.ClientSession

    async def patch(self, name: str, **changes: Any) -> None:
        url = f"{self.urls[name]}/_standin/settings"
        async with self.http.patch(url, json=changes) as reply:
            assert reply.status == 200, await reply.text()

    async def requests(self, name: str) -> list[dict[str, Any]]:
        """Chat requests the worker received (model listings are not logged)."""
        async with self.http.get(f"{self.urls[name]}/_standin/requests") as reply:
            records: list[dict[str, Any]] = (await reply.json())["requests"]
            return records

    async def reset(self) -> None:
        for url in self.urls.values():
            async with self.http.post(f"{url}/_standin/reset") as reply:
                assert reply.status == 200


@dataclass
class ChatEnv:
    stub: pb_grpc.ChatServiceAsyncStub
    workers: Workers
    pipeline: Pipeline
    cache: PromptCache


@pytest.fixture(scope="session")
async def workers() -> AsyncIterator[Workers]:
    servers = {
        name: StandinServer(Settings(token_delay_ms=1.0).patched({"models": list(models)}))
        for name, models in STANDIN_MODELS.items()
    }
    urls = {name: await server.start() for name, server in servers.items()}
    try:
        async with aiohttp.ClientSession() as http:
            yield Workers(urls, http)
    finally:
        for server in servers.values():
            await server.stop()


@pytest.fixture(scope="session")
async def chat_session_env(workers: Workers, redis_url: str) -> AsyncIterator[ChatEnv]:
    config = Config(
        providers=parse_providers(gateway_config(workers.urls)["providers"]),
        chat=SETTINGS,
        cache=CacheSettings(namespace=f"chat-test-{uuid.uuid4().hex[:8]}"),
        redis_url=redis_url,
    )
    session = upstream_session(config.chat)
    cache = PromptCache.from_url(redis_url, config.cache)
    pipeline = Pipeline(config, session, cache=cache)
    catalogue = ModelCatalogue(config, session, ttl_s=0.0)
    server = grpc.aio.server(interceptors=[GatewayInterceptor(Authenticator([TOKEN]))])
    pb_grpc.add_ChatServiceServicer_to_server(ChatServicer(pipeline, catalogue, cache), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield ChatEnv(pb_grpc.ChatServiceStub(channel), workers, pipeline, cache)
    finally:
        await channel.close(None)
        await server.stop(0)
        await cache.close()
        await session.close()


@pytest.fixture
async def chat(chat_session_env: ChatEnv) -> AsyncIterator[ChatEnv]:
    """The in-process chat service with fresh workers, worker health and cache."""
    env = chat_session_env
    await env.workers.reset()
    await env.cache.purge()
    env.pipeline.pool = WorkerPool()
    env.pipeline.settings = SETTINGS
    yield env
    env.pipeline.settings = SETTINGS


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def with_settings(env: ChatEnv, **changes: Any) -> None:
    env.pipeline.settings = dataclasses.replace(SETTINGS, **changes)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def http_request(body: dict[str, Any] | bytes) -> pb.CreateChatCompletionHttpRequest:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    request = pb.CreateChatCompletionHttpRequest()
    request.body.content_type = "application/json"
    request.body.data = data
    return request


def params(model: str, text: str, **fields: Any) -> pb.ChatCompletionParams:
    message = pb.ChatMessage(role="user")
    message.content.string_value = text
    return pb.ChatCompletionParams(model=model, messages=[message], **fields)


@dataclass
class Failure:
    code: grpc.StatusCode
    http_status: int
    error: dict[str, Any]
    retry_after: str | None


def failure_of(err: grpc.aio.AioRpcError) -> Failure:
    trailers = _text_metadata(err.trailing_metadata())
    body = json.loads(trailers[ERROR_JSON_KEY])
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return Failure(
        err.code(),
        int(trailers[HTTP_STATUS_KEY]),
        body["error"],
        trailers.get(RETRY_AFTER_KEY),
    )


async def http_call(
    env: ChatEnv, body: dict[str, Any] | bytes, metadata: Any = NO_CACHE, deadline: float = 20
) -> tuple[list[Any], dict[str, str]]:
    """The HttpBody messages of CreateChatCompletionHttp and the initial metadata."""
    call = env.stub.CreateChatCompletionHttp(
        http_request(body), metadata=metadata, timeout=deadline
    )
    messages = [m async for m in call]
    return messages, _text_metadata(await call.initial_metadata())


async def http_failure(
    env: ChatEnv, body: dict[str, Any] | bytes, metadata: Any = NO_CACHE
) -> Failure:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await http_call(env, body, metadata)
    return failure_of(caught.value)


def _text_metadata(metadata: Any) -> dict[str, str]:
    return {k: v for k, v in metadata or () if isinstance(v, str)}


def sse_chunks(messages: list[Any]) -> tuple[list[dict[str, Any]], str]:
    """The JSON chunks of an SSE answer and the last frame's payload."""
    text = b"".join(m.data for m in messages).decode()
    # A stream starts with a keep-alive comment once the worker accepted the request.
    frames = [f for f in text.split("\n\n") if not f.startswith(":")]
    assert frames[-1] == ""
    payloads = [f.removeprefix("data: ") for f in frames[:-1]]
    assert all(f.startswith("data: ") for f in frames[:-1])
    chunks = [json.loads(p) for p in payloads if p != "[DONE]"]
    return chunks, payloads[-1]
