"""Cache keys: equal requests share a key, every semantic difference gets its own."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.chat.cache import PromptCache
from services.chat.cache_key import (
    CacheControl,
    entry_prefix,
    glob_escape,
    is_entry_key,
    parse_cache_control,
)
from tests.cache.helpers import settings_for

BASE: dict[str, Any] = {
    "model": "qwen3:32b",
    "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "你好, what is 2+2?"},
    ],
    "temperature": 0.7,
    "top_p": 0.9,
    "max_tokens": 64,
    "stop": ["\n\n"],
    "seed": 7,
}

KeyFor = Callable[..., str]


@pytest.fixture
async def key_for() -> AsyncIterator[KeyFor]:
    """`key_for` of caches in namespace "ns" (key computation never touches Redis)."""
    plain = PromptCache(
        aioredis.Redis(port=1), settings_for("ns", isolate_tokens=False), owns_client=True
    )
    isolated = PromptCache(
        aioredis.Redis(port=1), settings_for("ns", isolate_tokens=True), owns_client=True
    )

    def compute(request: dict[str, Any], token: str | None = None, isolate: bool = False) -> str:
        return (isolated if isolate else plain).key_for(request, token)

    yield compute
    for cache in (plain, isolated):
        await cache.close()


def changed(**fields: Any) -> dict[str, Any]:
    request = copy.deepcopy(BASE)
    request.update(fields)
    return request


def test_key_format(key_for: KeyFor) -> None:
    key = key_for(BASE)
    prefix = "ns:cache:v1:qwen3:32b:"
    assert key.startswith(prefix)
    digest = key.removeprefix(prefix)
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")


def test_same_json_in_another_order_spacing_and_number_format(key_for: KeyFor) -> None:
    compact = (
        '{"model":"qwen3:32b","messages":[{"role":"user","content":"hi"}],'
        '"temperature":0.7,"top_p":1,"frequency_penalty":0,"max_tokens":64,"seed":3}'
    )
    reordered = """{
        "seed": 3.0, "max_tokens" : 64.0, "frequency_penalty": -0.0,
        "top_p": 1.0, "temperature": 7e-1,
        "messages": [ {"content": "hi", "role": "user"} ],
        "model": "qwen3:32b"
    }"""
    padded = reordered.replace("7e-1", "0.70")
    keys = {key_for(json.loads(text)) for text in (compact, reordered, padded)}
    assert len(keys) == 1


def test_stop_string_is_a_one_element_list(key_for: KeyFor) -> None:
    assert key_for(changed(stop="\n\n")) == key_for(BASE)


def test_null_is_absent(key_for: KeyFor) -> None:
    with_nulls = changed(response_format=None, tools=None, logprobs=None)
    with_nulls["messages"] = [dict(m, name=None) for m in BASE["messages"]]
    assert key_for(with_nulls) == key_for(BASE)


@pytest.mark.parametrize(
    "fields",
    [
        {"stream": True},
        {"stream": False},
        {"stream": True, "stream_options": {"include_usage": True}},
        {"user": "someone@example.com"},
        {"n": 1},
        {"keep_alive": "10m"},
    ],
    ids=lambda f: ",".join(f),
)
def test_transport_fields_do_not_change_the_key(key_for: KeyFor, fields: dict[str, Any]) -> None:
    assert key_for(changed(**fields)) == key_for(BASE)


def _message(index: int, **fields: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = copy.deepcopy(BASE["messages"])
    messages[index].update(fields)
    return messages


TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}

SEMANTIC_CHANGES: dict[str, dict[str, Any]] = {
    "model": {"model": "llama3.2:latest"},
    "user text": {"messages": _message(1, content="你好, what is 2+3?")},
    "trailing space": {"messages": _message(1, content="你好, what is 2+2? ")},
    "system text": {"messages": _message(0, content="Answer at length.")},
    "role": {"messages": _message(0, role="user")},
    "name": {"messages": _message(1, name="alice")},
    "content parts": {"messages": _message(1, content=[{"type": "text", "text": "你好"}])},
    "extra turn": {"messages": [*BASE["messages"], {"role": "assistant", "content": "4"}]},
    "turn order": {"messages": list(reversed(BASE["messages"]))},
    "tool_call_id": {"messages": _message(1, role="tool", tool_call_id="call_1")},
    "temperature": {"temperature": 0.71},
    "temperature absent": {"temperature": None},  # absent is not assumed to be a default
    "top_p": {"top_p": 0.95},
    "max_tokens": {"max_tokens": 65},
    "max_completion_tokens": {"max_tokens": None, "max_completion_tokens": 64},
    "stop": {"stop": ["\n"]},
    "no stop": {"stop": None},
    "seed": {"seed": 8},
    "frequency_penalty": {"frequency_penalty": 0.5},
    "presence_penalty": {"presence_penalty": 0.5},
    "response_format": {"response_format": {"type": "json_object"}},
    "tools": {"tools": [TOOL]},
    "tool_choice": {"tools": [TOOL], "tool_choice": "required"},
    "reasoning_effort": {"reasoning_effort": "none"},
    "reasoning": {"reasoning": {"effort": "high"}},
    "logprobs": {"logprobs": True},
    "top_logprobs": {"logprobs": True, "top_logprobs": 3},
    "unknown field": {"top_k": 20},  # unknown to the cache: kept, so it can only miss
}


@pytest.mark.parametrize("fields", SEMANTIC_CHANGES.values(), ids=SEMANTIC_CHANGES.keys())
def test_every_semantic_difference_misses(key_for: KeyFor, fields: dict[str, Any]) -> None:
    request = changed(**fields)
    for name, value in fields.items():
        if value is None:
            del request[name]
    assert key_for(request) != key_for(BASE)


def test_tool_parameters_are_compared_exactly(key_for: KeyFor) -> None:
    other = copy.deepcopy(TOOL)
    other["function"]["parameters"]["properties"]["city"]["type"] = "integer"
    assert key_for(changed(tools=[TOOL])) != key_for(changed(tools=[other]))


def test_numbers_inside_schemas_are_not_normalised(key_for: KeyFor) -> None:
    # Only top-level float parameters are normalised; 1 vs 1.0 inside a schema may reach
    # the model as different text, so it conservatively misses.
    def schema(minimum: float) -> dict[str, Any]:
        return {"type": "json_schema", "json_schema": {"schema": {"minimum": minimum}}}

    assert key_for(changed(response_format=schema(1))) != key_for(
        changed(response_format=schema(1.0))
    )


def test_token_isolation(key_for: KeyFor) -> None:
    assert key_for(BASE, "token-a") == key_for(BASE, "token-b")  # shared by default
    a = key_for(BASE, "token-a", isolate=True)
    b = key_for(BASE, "token-b", isolate=True)
    assert a != b
    assert a == key_for(BASE, "token-a", isolate=True)
    assert "token-a" not in a  # the token id only goes into the hash


def test_entry_keys_are_told_apart_from_locks_and_other_models() -> None:
    digest = "ab" * 32
    one_model = entry_prefix("ns", "qwen3")
    assert is_entry_key(f"ns:cache:v1:qwen3:{digest}", one_model, exact_model=True)
    assert not is_entry_key(f"ns:cache:v1:qwen3:32b:{digest}", one_model, exact_model=True)
    assert not is_entry_key(f"ns:cache:v1:qwen3:{digest}:lock", one_model, exact_model=True)
    every = entry_prefix("ns")
    assert is_entry_key(f"ns:cache:v1:qwen3:32b:{digest}", every, exact_model=False)
    assert not is_entry_key(f"ns:cache:v1:qwen3:32b:{digest}:lock", every, exact_model=False)
    assert not is_entry_key(f"ns:cache:v1:{digest}", every, exact_model=False)


def test_glob_escape() -> None:
    assert glob_escape("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, CacheControl()),
        ("", CacheControl()),
        ("no-cache", CacheControl(no_cache=True)),
        ("No-Store", CacheControl(no_store=True)),
        ("no-cache, no-store", CacheControl(no_cache=True, no_store=True)),
        (["no-cache", "no-store"], CacheControl(no_cache=True, no_store=True)),
        ("max-age=0", CacheControl(no_cache=True)),
        ('max-age="0"', CacheControl(no_cache=True)),
        ("max-age=60", CacheControl()),
        ("private, no-transform", CacheControl()),
        ("no-cachex", CacheControl()),
    ],
)
def test_parse_cache_control(header: str | list[str] | None, expected: CacheControl) -> None:
    assert parse_cache_control(header) == expected
