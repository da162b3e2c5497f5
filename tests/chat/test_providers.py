"""The two upstream adapters against a stand-in worker, in the formats of several ollama
versions: deltas, finish, usage, and failures raised as the right UpstreamFailure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from clawgate.common.config import ModelSpec, ProviderSpec
from services.chat.errors import to_api_error
from services.chat.main import upstream_session
from services.chat.providers.base import (
    Delta,
    ProviderAdapter,
    Target,
    UpstreamCut,
    UpstreamHttpError,
    UpstreamStreamError,
    UpstreamUnreachable,
    bearer_headers,
)
from services.chat.providers.ollama_native import OllamaNativeAdapter
from services.chat.providers.openai_compat import OpenAICompatAdapter
from services.chat.request import parse_request
from tests.chat.conftest import SETTINGS, Workers, user


@pytest.fixture
async def session(workers: Workers) -> AsyncIterator[aiohttp.ClientSession]:
    await workers.reset()
    async with upstream_session(SETTINGS) as http:
        yield http


def target(workers: Workers, api: str, model: str = "qwen3:32b") -> Target:
    base = workers.urls["main"] + ("/v1" if api == "openai-completions" else "")
    return Target(ProviderSpec("p", api, (base,), "ollama"), ModelSpec(model, model), base)


def adapter(api: str) -> ProviderAdapter:
    return OpenAICompatAdapter() if api == "openai-completions" else OllamaNativeAdapter()


async def collect(
    session: aiohttp.ClientSession, api: str, workers: Workers, **body: Any
) -> list[Delta]:
    model = body.pop("model", "qwen3:32b")
    request = parse_request({"model": model, "messages": user("adapter test"), **body})
    stream = adapter(api).stream(session, target(workers, api, model), request)
    return [d async for batch in stream for d in batch]


APIS = ["openai-completions", "ollama"]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    "switches",
    [{}, {"legacy_stream": True}, {"think_tags_in_content": True}],
    ids=["current", "legacy-stream", "think-tags"],
)
async def test_answer_with_reasoning_finish_and_usage(
    session: aiohttp.ClientSession, workers: Workers, api: str, switches: dict[str, Any]
) -> None:
    await workers.patch("main", **switches)
    deltas = await collect(session, api, workers)
    content = "".join(d.content for d in deltas)
    reasoning = "".join(d.reasoning for d in deltas)
    assert content.startswith("About adapter test") and reasoning
    assert "<think>" not in content and "</think>" not in content + reasoning
    finishes = [d.finish_reason for d in deltas if d.finish_reason]
    assert finishes in (["stop"], ["length"])
    usage = [d.usage for d in deltas if d.usage]
    assert len(usage) == 1 and usage[0] is not None and usage[0].completion_tokens > 0


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("old_message", [False, True])
async def test_model_not_pulled(
    session: aiohttp.ClientSession, workers: Workers, api: str, old_message: bool
) -> None:
    await workers.patch("main", old_not_found_message=old_message, api_error_only=old_message)
    with pytest.raises(UpstreamHttpError) as caught:
        await collect(session, api, workers, model="ghost:7b")
    assert caught.value.status == 404
    error = to_api_error(caught.value, target(workers, api, "ghost:7b"))
    assert error.code == "model_not_pulled" and "ollama pull ghost:7b" in error.message


@pytest.mark.parametrize("api", APIS)
async def test_cut_stream_is_a_failure(
    session: aiohttp.ClientSession, workers: Workers, api: str
) -> None:
    # /v1 just ends (no finish, no [DONE]); native sends an error line first.
    await workers.patch("main", fail="cut", cut_after=2)
    expected = UpstreamCut if api == "openai-completions" else UpstreamStreamError
    with pytest.raises(expected) as caught:
        await collect(session, api, workers)
    assert to_api_error(caught.value, target(workers, api)).status == 502


@pytest.mark.parametrize("api", APIS)
async def test_refused_connection_is_unreachable(
    session: aiohttp.ClientSession, workers: Workers, api: str
) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    spec = ModelSpec("qwen3:32b", "q")
    request = parse_request({"model": "qwen3:32b", "messages": user("x")})
    with pytest.raises(UpstreamUnreachable) as caught:
        stream = adapter(api).stream(
            session, Target(ProviderSpec("p", api, (dead,)), spec, dead), request
        )
        async for _ in stream:
            pass
    assert "connection" in caught.value.message


@pytest.mark.parametrize("api", APIS)
async def test_probe_of_the_standin(
    session: aiohttp.ClientSession, workers: Workers, api: str
) -> None:
    # Through /v1 or natively, the stand-in is found to be ollama, with its loaded models.
    spec = target(workers, api)
    await collect(session, api, workers, max_tokens=2)  # loads qwen3:32b
    probe = await adapter(api).probe(session, spec.provider, spec.worker)
    assert probe.server == "ollama" and probe.version
    assert {"qwen3:32b", "llama3.2:latest", "gemma3:4b"} <= set(probe.models)
    assert all(created > 1_600_000_000 for created in probe.models.values())
    assert probe.loaded is not None
    assert [m.name for m in probe.loaded] == ["qwen3:32b"]
    assert probe.loaded[0].size_vram_bytes and probe.vram_used_bytes > 0


async def test_native_reasoning_effort_none_turns_thinking_off(
    session: aiohttp.ClientSession, workers: Workers
) -> None:
    deltas = await collect(session, "ollama", workers, reasoning_effort="none")
    assert not "".join(d.reasoning for d in deltas)
    (record,) = await workers.requests("main")
    assert record["body"]["think"] is False


def test_upstream_gets_the_provider_key_never_the_gateway_token() -> None:
    provider = ProviderSpec("p", "ollama", ("http://w",), "provider-key")
    assert bearer_headers(provider)["Authorization"] == "Bearer provider-key"
    assert "Authorization" not in bearer_headers(ProviderSpec("p", "ollama", ("http://w",)))
