"""The stand-in answers in the shapes of the ollama transcripts (tests/data/ollama/, written
from ollama's source): the same keys in the same order, the same chunk sequence."""

from __future__ import annotations

import json
from typing import Any

from tests.replay import DATA, recorded

from .conftest import USER_HI, Standin, chunks_of, sse_payloads


def recorded_chunks(name: str) -> list[dict[str, Any]]:
    return chunks_of(sse_payloads((DATA / "ollama" / name).read_text()))


def shape(chunk: dict[str, Any]) -> tuple[Any, ...]:
    """What a chunk is made of: its keys, and its choice's delta keys and finish."""
    choices = chunk["choices"]
    if not choices:
        return (list(chunk), None, None)
    choice = choices[0]
    return (list(chunk), list(choice["delta"]), choice["finish_reason"] is not None)


async def get(standin: Standin, path: str) -> Any:
    async with standin.http.get(standin.base_url + path) as reply:
        return await reply.json(content_type=None)


async def test_listings_have_the_recorded_keys(standin: Standin) -> None:
    await standin.v1({"model": "qwen3:8b", "messages": USER_HI, "max_tokens": 2})  # loads it
    tags = await get(standin, "/api/tags")
    ps = await get(standin, "/api/ps")
    models = await get(standin, "/v1/models")
    # Newer servers add optional keys to /api/tags entries (capabilities…), never drop any.
    recorded_tag = recorded("ollama/api-tags.response.json")["models"][0]
    assert list(tags["models"][0])[: len(recorded_tag)] == list(recorded_tag)
    assert list(ps["models"][0]) == list(recorded("ollama/api-ps.response.json")["models"][0])
    assert list(models["data"][0]) == list(recorded("ollama/v1-models.response.json")["data"][0])
    assert list(await get(standin, "/api/version")) == ["version"]


async def test_v1_answers_have_the_recorded_shape(standin: Standin) -> None:
    body = {"model": "qwen3:8b", "messages": USER_HI}
    status, answer = await standin.v1(body)
    assert status == 200
    assert list(answer) == list(recorded("ollama/v1-chat.response.json"))
    stream = chunks_of(await standin.v1_stream({**body, "stream_options": {"include_usage": True}}))
    expected = [shape(c) for c in recorded_chunks("v1-stream.response.sse")]
    # Recorded: role+thinking, content, finish, usage. The stand-in thinks and answers in
    # more chunks: thinking ones carry `"content":""`, and a native chunk holding both is
    # split into `{reasoning}` then `{content}`, as ollama does (§1.3).
    assert shape(stream[0]) == expected[0]
    assert [shape(c) for c in stream[-3:]] == expected[1:]
    middle = {tuple(shape(c)[1]) for c in stream[1:-3]}
    assert middle <= {("content", "reasoning"), ("reasoning",), ("content",)}, middle


async def test_native_lines_have_the_recorded_keys(standin: Standin) -> None:
    lines = await standin.native_stream({"model": "qwen3:8b", "messages": USER_HI})
    recorded_lines = [
        json.loads(line)
        for line in (DATA / "ollama/api-chat.response.ndjson").read_text().splitlines()
    ]
    assert list(lines[0]) == list(recorded_lines[0])
    assert list(lines[-1]) == list(recorded_lines[-1])
