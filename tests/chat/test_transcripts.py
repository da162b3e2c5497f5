"""The adapters' parsers and probes against recorded server transcripts (tests/data/):
real llama.cpp bytes, and ollama's formats as its source documents them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from clawgate.common.config import API_OLLAMA, API_OPENAI, ModelSpec, ProviderSpec
from services.chat.errors import to_api_error
from services.chat.openai_format import Aggregator, ChunkEncoder
from services.chat.providers import adapter_for
from services.chat.providers.base import (
    Delta,
    Target,
    UpstreamFailure,
    UpstreamHttpError,
    UpstreamStreamError,
    UpstreamWrongApi,
    Usage,
)
from services.chat.providers.probe import SERVER_LLAMA_CPP, SERVER_OLLAMA, LoadedModel
from services.chat.request import parse_request
from services.health.checks import worker_failure
from tests.replay import NDJSON, SSE, TEXT, ReplayServer, Reply, recorded

# The model is named by the path it was recorded with; the stream must say what the same
# request answered without streaming (temperature 0).
LLAMA_MODEL = recorded("llama_cpp/models.response.json")["data"][0]["id"]
LLAMA_TEXT = recorded("llama_cpp/chat.response.json")["choices"][0]["message"]["content"]
LLAMA_KEY = "sekret"  # the key the transcripts were recorded with (a throwaway server)
LLAMA = {
    "/v1/models": Reply("llama_cpp/models.response.json"),
    "/props": Reply("llama_cpp/props.response.json"),
    "/health": Reply("llama_cpp/health.response.json"),
    "/v1/chat/completions": Reply("llama_cpp/stream.response.sse", content_type=SSE),
}
LLAMA_404 = Reply("llama_cpp/api-chat.response.json", 404)
OLLAMA = {
    "/api/version": Reply("ollama/api-version.response.json"),
    "/api/tags": Reply("ollama/api-tags.response.json"),
    "/api/ps": Reply("ollama/api-ps.response.json"),
    "/api/chat": Reply("ollama/api-chat.response.ndjson", content_type=NDJSON),
    "/v1/models": Reply("ollama/v1-models.response.json"),
    "/v1/chat/completions": Reply("ollama/v1-stream.response.sse", content_type=SSE),
}
GIN_404 = Reply("ollama/gin-404.response.txt", 404, TEXT)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def replay(routes: dict[str, Reply], fallback: Reply) -> tuple[ReplayServer, str]:
    server = ReplayServer(routes, fallback)
    return server, await server.start()


def target(url: str, api: str, model: str, key: str = "") -> Target:
    worker = url + "/v1" if api == API_OPENAI else url
    return Target(ProviderSpec("p", api, (worker,), key, ()), ModelSpec(model, model), worker)


async def chat(http: aiohttp.ClientSession, where: Target) -> list[Delta]:
    request = parse_request(
        {"model": where.model.id, "messages": [{"role": "user", "content": "hi"}]}
    )
    stream = adapter_for(where.provider.api).stream(http, where, request)
    return [d async for batch in stream for d in batch]


async def failure(http: aiohttp.ClientSession, where: Target) -> UpstreamFailure:
    with pytest.raises(UpstreamFailure) as caught:
        await chat(http, where)
    return caught.value


def answer(deltas: list[Delta]) -> dict[str, Any]:
    aggregator = Aggregator()
    for delta in deltas:
        aggregator.add(delta)
    assert aggregator.usage is not None
    return aggregator.completion("m", aggregator.usage)


# -- llama.cpp (recorded from a real llama-server) ---------------------------------------


async def test_llama_cpp_stream_is_parsed_with_everything_it_carries(
    http: aiohttp.ClientSession,
) -> None:
    server, url = await replay(LLAMA, LLAMA_404)
    try:
        deltas = await chat(http, target(url, API_OPENAI, LLAMA_MODEL, LLAMA_KEY))
    finally:
        await server.stop()
    # llama.cpp's role chunk (content null) is no delta: only real output ends retries.
    assert all(d.has_output or d.finish_reason or d.usage for d in deltas)
    completion = answer(deltas)
    assert completion["choices"][0]["message"]["content"] == LLAMA_TEXT
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"] == {
        "prompt_tokens": 36, "completion_tokens": 12, "total_tokens": 48,
        "prompt_tokens_details": {"cached_tokens": 35},
    }  # fmt: skip
    assert completion["system_fingerprint"] == "b0-unknown"
    assert completion["timings"]["predicted_n"] == 12
    # Our JSON answer has every field llama.cpp's own non-stream answer has.
    direct = recorded("llama_cpp/chat.response.json")
    assert set(direct) <= set(completion)
    assert set(direct["usage"]) <= set(completion["usage"])
    # Streamed to a client, every chunk keeps the fingerprint; the usage chunk the timings.
    encoder = ChunkEncoder("m", include_usage=True)
    chunks = [c for d in deltas for c in encoder.encode(d)] + encoder.end()
    assert {c["system_fingerprint"] for c in chunks} == {"b0-unknown"}
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 35}
    assert chunks[-1]["timings"]["predicted_n"] == 12


async def test_llama_cpp_is_probed_as_what_it_is(http: aiohttp.ClientSession) -> None:
    server, url = await replay(LLAMA, LLAMA_404)
    try:
        spot = target(url, API_OPENAI, LLAMA_MODEL, LLAMA_KEY)
        probe = await adapter_for(API_OPENAI).probe(http, spot.provider, spot.worker)
    finally:
        await server.stop()
    assert probe.server == SERVER_LLAMA_CPP and probe.version == "b0-unknown"
    assert list(probe.models) == [LLAMA_MODEL] and probe.serves(LLAMA_MODEL)
    assert probe.loaded == [LoadedModel(LLAMA_MODEL, 96576768.0, None, 1024)]
    assert "ollama" not in probe.describe(probe.missing(["other.gguf"]))
    # Every probe request carried the provider's key.
    assert {auth for _, auth in server.auth} == {f"Bearer {LLAMA_KEY}"}


async def test_llama_cpp_context_overflow(http: aiohttp.ClientSession) -> None:
    routes = {**LLAMA, "/v1/chat/completions": Reply("llama_cpp/overflow.response.json", 400)}
    server, url = await replay(routes, LLAMA_404)
    try:
        spot = target(url, API_OPENAI, LLAMA_MODEL)
        failed = await failure(http, spot)
    finally:
        await server.stop()
    assert isinstance(failed, UpstreamHttpError) and failed.status == 400
    error = to_api_error(failed, spot)
    assert (error.status, error.code) == (400, "context_length_exceeded")
    assert "1531 tokens" in error.message


async def test_llama_cpp_without_the_key(http: aiohttp.ClientSession) -> None:
    unauthorized = Reply("llama_cpp/unauthorized.response.json", 401)
    server, url = await replay({"/health": LLAMA["/health"]}, unauthorized)
    try:
        spot = target(url, API_OPENAI, LLAMA_MODEL)
        with pytest.raises(UpstreamHttpError) as caught:
            await adapter_for(API_OPENAI).probe(http, spot.provider, spot.worker)
        failed = await failure(http, spot)
    finally:
        await server.stop()
    assert caught.value.status == 401
    assert "refused the provider's API key (HTTP 401)" in worker_failure(
        spot.provider, caught.value
    )
    assert to_api_error(failed, spot).code == "upstream_auth_failed"


async def test_llama_cpp_configured_as_ollama_is_a_named_mistake(
    http: aiohttp.ClientSession,
) -> None:
    server, url = await replay(LLAMA, LLAMA_404)
    try:
        spot = target(url, API_OLLAMA, "smollm2")
        with pytest.raises(UpstreamWrongApi) as probed:
            await adapter_for(API_OLLAMA).probe(http, spot.provider, spot.worker)
        chatted = await failure(http, spot)
    finally:
        await server.stop()
    expected = (
        f"worker at {url} does not serve the ollama native API; use `api: openai-completions`"
    )
    assert probed.value.message == expected
    assert isinstance(chatted, UpstreamWrongApi)
    error = to_api_error(chatted, spot)
    assert (error.status, error.code, error.message) == (502, "worker_misconfigured", expected)


# -- ollama (written from its source: notes/ollama-api.md) --------------------------------


@pytest.mark.parametrize(
    ("file", "reasoning", "content", "usage"),
    [
        ("ollama/v1-stream.response.sse", "Okay", "Hello", Usage(12, 48)),
        ("ollama/v1-stream-v0.12.response.sse", "", "Hello", Usage(12, 2)),
    ],
)
async def test_ollama_v1_streams_of_every_format(
    http: aiohttp.ClientSession, file: str, reasoning: str, content: str, usage: Usage
) -> None:
    server, url = await replay(
        {**OLLAMA, "/v1/chat/completions": Reply(file, content_type=SSE)}, GIN_404
    )
    try:
        deltas = await chat(http, target(url, API_OPENAI, "qwen3:8b"))
    finally:
        await server.stop()
    completion = answer(deltas)
    message = completion["choices"][0]["message"]
    assert (message.get("reasoning", ""), message["content"]) == (reasoning, content)
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"] == usage.to_json()
    assert completion["system_fingerprint"] == "fp_ollama"


async def test_ollama_native_chat(http: aiohttp.ClientSession) -> None:
    server, url = await replay(OLLAMA, GIN_404)
    try:
        completion = answer(await chat(http, target(url, API_OLLAMA, "qwen3:8b")))
    finally:
        await server.stop()
    assert completion["choices"][0]["message"] == {
        "role": "assistant", "content": "Hello", "reasoning": "Okay"
    }  # fmt: skip
    assert completion["usage"] == Usage(26, 282).to_json()


async def test_ollama_native_mid_stream_error(http: aiohttp.ClientSession) -> None:
    broken = Reply("ollama/api-chat-mid-stream-error.response.ndjson", content_type=NDJSON)
    server, url = await replay({**OLLAMA, "/api/chat": broken}, GIN_404)
    try:
        failed = await failure(http, target(url, API_OLLAMA, "qwen3:8b"))
    finally:
        await server.stop()
    assert isinstance(failed, UpstreamStreamError) and "unexpected EOF" in failed.message


@pytest.mark.parametrize("api", [API_OPENAI, API_OLLAMA])
async def test_ollama_is_probed_for_what_is_pulled_and_loaded(
    http: aiohttp.ClientSession, api: str
) -> None:
    server, url = await replay(OLLAMA, GIN_404)
    try:
        spot = target(url, api, "qwen3:8b")
        probe = await adapter_for(api).probe(http, spot.provider, spot.worker)
    finally:
        await server.stop()
    assert probe.server == SERVER_OLLAMA and probe.version == "0.5.1"
    # /v1/models and /api/tags list different models in the transcripts.
    assert list(probe.models) == (["qwen3:8b"] if api == API_OPENAI else ["llama3.2:latest"])
    assert probe.serves("qwen3:8b" if api == API_OPENAI else "llama3.2")
    assert probe.loaded == [
        LoadedModel("mistral:latest", 5137025024.0, 5137025024.0, 4096,
                    "2024-06-04T14:38:31.83753-07:00")
    ]  # fmt: skip
    assert probe.describe(["qwen3:32b"]).endswith("models not pulled: ollama pull qwen3:32b")


async def test_ollama_with_no_models_lists_null(http: aiohttp.ClientSession) -> None:
    empty = Reply("ollama/v1-models-empty.response.json")
    server, url = await replay({**OLLAMA, "/v1/models": empty}, GIN_404)
    try:
        spot = target(url, API_OPENAI, "qwen3:8b")
        probe = await adapter_for(API_OPENAI).probe(http, spot.provider, spot.worker)
    finally:
        await server.stop()
    assert probe.models == {} and not probe.serves("qwen3:8b")


@pytest.mark.parametrize(
    ("api", "path", "reply", "status", "code", "fragment"),
    [
        (API_OPENAI, "/v1/chat/completions", Reply("ollama/v1-error-not-found.response.json", 404),
         404, "model_not_pulled", "ollama pull qwen3:8b"),
        (API_OPENAI, "/v1/chat/completions",
         Reply("ollama/v1-error-not-found-v0.11.response.json", 404),
         404, "model_not_pulled", "ollama pull qwen3:8b"),
        (API_OLLAMA, "/api/chat", Reply("ollama/api-chat-not-found.response.json", 404),
         404, "model_not_pulled", "ollama pull qwen3:8b"),
        (API_OPENAI, "/v1/chat/completions", Reply("ollama/v1-error-busy.response.json", 503),
         503, "upstream_busy", "maximum pending requests exceeded"),
        (API_OPENAI, "/v1/chat/completions", GIN_404,
         502, "worker_misconfigured", "does not serve the OpenAI-compatible API"),
    ],
)  # fmt: skip
async def test_ollama_errors_become_the_right_client_errors(
    http: aiohttp.ClientSession,
    api: str,
    path: str,
    reply: Reply,
    status: int,
    code: str,
    fragment: str,
) -> None:
    server, url = await replay({**OLLAMA, path: reply}, GIN_404)
    try:
        spot = target(url, api, "qwen3:8b")
        error = to_api_error(await failure(http, spot), spot)
    finally:
        await server.stop()
    assert (error.status, error.code) == (status, code) and fragment in error.message
