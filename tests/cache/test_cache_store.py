"""Store and lookup on a real Redis: what is stored, for how long, and what is not."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.chat.cache import is_complete
from tests.cache.conftest import MakeCache
from tests.cache.helpers import chat_request, completion


async def test_second_identical_request_is_a_hit_with_ttl(
    make_cache: MakeCache, raw_redis: aioredis.Redis
) -> None:
    cache = make_cache(ttl_seconds=120)
    key = cache.key_for(chat_request("What is 2+2?"))

    first = await cache.begin(key)
    assert (first.status, first.completion) == ("MISS", None)
    answer = completion("4")
    await cache.finish(first, answer)

    ttl = await raw_redis.ttl(key)
    assert 110 <= ttl <= 120
    assert not await raw_redis.exists(f"{key}:lock")  # released by finish()

    second = await cache.begin(key)
    assert second.status == "HIT"
    assert second.completion == answer  # usage keeps the original token counts
    assert second.completion is not None and second.completion["usage"]["total_tokens"] == 60

    # Each hit is a private copy: the chat service may rewrite id/model freely.
    second.completion["id"] = "chatcmpl-mutated"
    third = await cache.begin(key)
    assert third.completion == answer


async def test_same_request_from_json_in_another_order_hits(make_cache: MakeCache) -> None:
    cache = make_cache(isolate_tokens=False)  # with isolation off, the token is ignored
    stored = json.loads('{"model":"qwen3:32b","messages":[{"role":"user","content":"hi"}]}')
    lookup = json.loads('{ "messages": [{"content": "hi", "role": "user"}], "model": "qwen3:32b" }')
    decision = await cache.begin(cache.key_for(stored))
    await cache.finish(decision, completion("hello"))
    hit = await cache.begin(cache.key_for(lookup, token_id="another-token"))
    assert hit.status == "HIT"


def _without_finish_reason() -> dict[str, Any]:
    answer = completion()
    del answer["choices"][0]["finish_reason"]
    return answer


INCOMPLETE: dict[str, Any] = {
    "none": None,
    "finish_reason null (cut stream)": completion(finish=None),
    "finish_reason missing": _without_finish_reason(),
    "finish_reason error": completion(finish="error"),
    "error object": {"error": {"message": "model 'x' not found", "type": "not_found_error"}},
    "error beside choices": completion(error={"message": "cut"}),
    "no choices": completion() | {"choices": []},
    "two choices": completion() | {"choices": completion()["choices"] * 2},
    "content not text": completion(text=None),  # type: ignore[arg-type]
    "tool_calls without calls": completion(finish="tool_calls"),
    "a stream chunk": completion() | {"object": "chat.completion.chunk"},
    "usage not an object": completion() | {"usage": "60"},
    "not a dict": ["Hello!"],
}


@pytest.mark.parametrize("answer", INCOMPLETE.values(), ids=INCOMPLETE.keys())
async def test_incomplete_answers_are_never_stored(
    make_cache: MakeCache, raw_redis: aioredis.Redis, answer: Any
) -> None:
    assert not is_complete(answer)
    cache = make_cache()
    key = cache.key_for(chat_request())
    decision = await cache.begin(key)
    assert decision.status == "MISS"
    await cache.finish(decision, answer)
    assert not await raw_redis.exists(key)
    assert not await raw_redis.exists(f"{key}:lock")  # the lock is released anyway
    assert (await cache.begin(key)).status == "MISS"
    assert cache.stats()["stores"] == 0


@pytest.mark.parametrize("finish", ["stop", "length"])
async def test_complete_finish_reasons_are_stored(make_cache: MakeCache, finish: str) -> None:
    cache = make_cache()
    key = cache.key_for(chat_request())
    await cache.finish(await cache.begin(key), completion(finish=finish))
    assert (await cache.begin(key)).status == "HIT"


async def test_tool_call_answers_are_stored(make_cache: MakeCache) -> None:
    cache = make_cache()
    answer = completion(finish="tool_calls")
    answer["choices"][0]["message"] = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_ab12cd34",
                "index": 0,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Tokyo"}'},
            }
        ],
    }
    key = cache.key_for(chat_request("Weather in Tokyo?", tools=[{"type": "function"}]))
    await cache.finish(await cache.begin(key), answer)
    hit = await cache.begin(key)
    assert hit.status == "HIT" and hit.completion == answer


async def test_no_store_reads_but_never_writes(
    make_cache: MakeCache, raw_redis: aioredis.Redis
) -> None:
    cache = make_cache()
    key = cache.key_for(chat_request())
    decision = await cache.begin(key, no_store=True)
    assert decision.status == "MISS" and decision.no_store
    await cache.finish(decision, completion())
    assert not await raw_redis.exists(key)

    await cache.finish(await cache.begin(key), completion("stored"))
    hit = await cache.begin(key, no_store=True)
    assert hit.status == "HIT" and hit.completion == completion("stored")


async def test_no_cache_skips_the_lookup_and_replaces_the_entry(make_cache: MakeCache) -> None:
    cache = make_cache()
    key = cache.key_for(chat_request())
    await cache.finish(await cache.begin(key), completion("old"))

    fresh = await cache.begin(key, no_cache=True)
    assert (fresh.status, fresh.reason, fresh.completion) == ("MISS", "no-cache", None)
    await cache.finish(fresh, completion("new"))
    hit = await cache.begin(key)
    assert hit.completion == completion("new")

    # no-cache + no-store: neither reads nor writes.
    both = await cache.begin(key, no_cache=True, no_store=True)
    assert both.status == "MISS"
    await cache.finish(both, completion("newest"))
    assert (await cache.begin(key)).completion == completion("new")


async def test_disabled_cache_bypasses_everything(
    make_cache: MakeCache, raw_redis: aioredis.Redis
) -> None:
    cache = make_cache(enabled=False)
    key = cache.key_for(chat_request())
    decision = await cache.begin(key)
    assert (decision.status, decision.reason) == ("BYPASS", "disabled")
    await cache.finish(decision, completion())
    assert not await raw_redis.exists(key)
    stats = cache.stats()
    assert stats["enabled"] is False and stats["bypasses"] == 1


async def test_unreadable_entry_is_a_miss_and_gets_replaced(
    make_cache: MakeCache, raw_redis: aioredis.Redis
) -> None:
    cache = make_cache()
    key = cache.key_for(chat_request())
    for junk in (b"not json", b'{"completion": {"choices": []}}', b"[1, 2]"):
        await raw_redis.set(key, junk)
        decision = await cache.begin(key)
        assert decision.status == "MISS"
        await cache.finish(decision, completion("repaired"))
        assert (await cache.begin(key)).completion == completion("repaired")


async def test_finish_is_idempotent_and_a_noop_on_hits(make_cache: MakeCache) -> None:
    cache = make_cache()
    key = cache.key_for(chat_request())
    decision = await cache.begin(key)
    await cache.finish(decision, completion("first"))
    await cache.finish(decision, completion("second"))  # ignored
    hit = await cache.begin(key)
    await cache.finish(hit, completion("third"))  # a HIT has nothing to finish
    assert (await cache.begin(key)).completion == completion("first")
    assert cache.stats()["stores"] == 1


async def test_finish_completes_when_the_caller_is_cancelled(make_cache: MakeCache) -> None:
    cache = make_cache()
    key = cache.key_for(chat_request())
    decision = await cache.begin(key)
    finishing = asyncio.create_task(cache.finish(decision, completion("kept")))
    await asyncio.sleep(0)  # finish() has started its write
    finishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finishing
    for _ in range(100):
        if cache.stats()["stores"] == 1:
            break
        await asyncio.sleep(0.01)
    assert (await cache.begin(key)).completion == completion("kept")


async def test_purge_all_and_one_model(
    make_cache: MakeCache, raw_redis: aioredis.Redis, namespace: str
) -> None:
    cache = make_cache()
    models = {"qwen3:32b": 3, "qwen3": 2, "llama3.2:latest": 1}
    for model, count in models.items():
        for i in range(count):
            key = cache.key_for(chat_request(f"q{i}", model=model))
            await cache.finish(await cache.begin(key), completion(f"a{i}"))
    held = await cache.begin(cache.key_for(chat_request("in flight", model="qwen3")))
    other = make_cache(namespace=f"{namespace}-other")
    other_key = other.key_for(chat_request("q0"))
    await other.finish(await other.begin(other_key), completion())

    # "qwen3" must not take "qwen3:32b" entries with it, nor the in-flight lock.
    assert await cache.purge("qwen3") == 2
    assert await raw_redis.exists(f"{held.key}:lock")
    assert (await cache.begin(cache.key_for(chat_request("q0", model="qwen3:32b")))).status == "HIT"
    assert await cache.purge("no-such-model") == 0
    assert await cache.purge() == 4
    for model in models:
        assert (await cache.begin(cache.key_for(chat_request("q0", model=model)))).status != "HIT"
    assert (await other.begin(other_key)).status == "HIT"  # another deployment's entries
    await cache.finish(held, None)


async def test_purge_model_with_glob_characters(make_cache: MakeCache) -> None:
    cache = make_cache()
    for model in ("m*", "m1", "m?"):
        key = cache.key_for(chat_request(model=model))
        await cache.finish(await cache.begin(key), completion())
    assert await cache.purge("m*") == 1
    assert await cache.purge("m?") == 1
    assert await cache.purge() == 1


async def test_stats_count_and_time_what_happened(make_cache: MakeCache) -> None:
    cache = make_cache()
    keys = [cache.key_for(chat_request(f"question {i}")) for i in range(3)]
    for key in keys:
        await cache.finish(await cache.begin(key), completion())
    for key in keys * 2:
        assert (await cache.begin(key)).status == "HIT"
    await cache.begin(keys[0], no_cache=True)  # a MISS that is never finished: counted

    stats = cache.stats()
    assert stats["hits"] == 6 and stats["misses"] == 4 and stats["stores"] == 3
    assert stats["bypasses"] == 0 and stats["coalesced"] == 0
    assert stats["enabled"] is True and stats["redis_available"] is True
    assert 0 < stats["hit_latency_p50_ms"] <= stats["hit_latency_p99_ms"] < 500
    assert set(stats) == {
        "hits",
        "misses",
        "bypasses",
        "stores",
        "coalesced",
        "hit_latency_p50_ms",
        "hit_latency_p99_ms",
        "redis_available",
        "entries",
        "enabled",
    }
    # `entries` is refreshed in the background after a stats() call.
    for _ in range(100):
        if cache.stats()["entries"] == 3:
            break
        await asyncio.sleep(0.01)
    assert cache.stats()["entries"] == 3
