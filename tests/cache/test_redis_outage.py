"""Redis down or frozen: requests bypass the cache within the op timeout, and caching
resumes by itself when Redis is back (same PromptCache, same client)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator

import pytest

from clawgate.common.errors import ApiError
from services.chat.cache import CacheDecision, PromptCache
from tests.cache.conftest import MakeCache
from tests.cache.helpers import chat_request, completion
from tests.conftest import PrivateRedis

OP_TIMEOUT_MS = 50
RETRY_S = 0.2
# Scheduling noise allowed on top of the op timeout on a busy test machine.
SLACK_MS = 40


@pytest.fixture
async def cache(make_cache: MakeCache, private_redis: PrivateRedis) -> AsyncIterator[PromptCache]:
    yield make_cache(url=private_redis.url, op_timeout_ms=OP_TIMEOUT_MS, retry_interval_s=RETRY_S)


async def timed_begin(cache: PromptCache, key: str) -> tuple[CacheDecision, float]:
    started = time.perf_counter()
    decision = await cache.begin(key)
    return decision, (time.perf_counter() - started) * 1000


async def until_not_bypassed(cache: PromptCache, key: str) -> CacheDecision:
    """Retry until the cache probes Redis again (at most a few retry intervals)."""
    deadline = time.monotonic() + 5
    while True:
        decision = await cache.begin(key)
        if decision.status != "BYPASS" or time.monotonic() > deadline:
            return decision
        await cache.finish(decision, None)
        await asyncio.sleep(RETRY_S / 4)


async def test_redis_down_bypasses_then_caching_resumes(
    cache: PromptCache, private_redis: PrivateRedis
) -> None:
    stored_key = cache.key_for(chat_request("before the outage"))
    await cache.finish(await cache.begin(stored_key), completion("before"))
    assert (await cache.begin(stored_key)).status == "HIT"

    await asyncio.to_thread(private_redis.stop)

    first, first_ms = await timed_begin(cache, cache.key_for(chat_request("during 1")))
    assert (first.status, first.reason) == ("BYPASS", "redis-down")
    assert first_ms < OP_TIMEOUT_MS + SLACK_MS
    await cache.finish(first, completion("not stored"))  # must neither raise nor wait

    # While Redis is known down, requests do not even try it.
    slowest = 0.0
    for i in range(50):
        decision, ms = await timed_begin(cache, cache.key_for(chat_request(f"during {i}")))
        assert decision.status == "BYPASS"
        await cache.finish(decision, completion())
        slowest = max(slowest, ms)
    assert slowest < OP_TIMEOUT_MS + SLACK_MS
    stats = cache.stats()
    assert stats["redis_available"] is False
    assert stats["bypasses"] >= 51

    await asyncio.to_thread(private_redis.start)  # same port, same data directory

    key = cache.key_for(chat_request("after the outage"))
    decision = await until_not_bypassed(cache, key)
    assert decision.status == "MISS"
    await cache.finish(decision, completion("after"))
    hit = await cache.begin(key)
    assert hit.status == "HIT" and hit.completion == completion("after")
    assert cache.stats()["redis_available"] is True


async def test_frozen_redis_costs_at_most_the_op_timeout(
    cache: PromptCache, private_redis: PrivateRedis
) -> None:
    key = cache.key_for(chat_request())
    await cache.finish(await cache.begin(key), completion("kept"))
    assert private_redis.child is not None

    private_redis.child.signal(signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        decision, ms = await timed_begin(cache, key)
        assert decision.status == "BYPASS"
        assert OP_TIMEOUT_MS * 0.8 <= ms < OP_TIMEOUT_MS + SLACK_MS
        await cache.finish(decision, None)
        again, next_ms = await timed_begin(cache, key)
        assert again.status == "BYPASS"
        assert next_ms < 5  # known down: no second wait
        await cache.finish(again, None)
    finally:
        private_redis.child.signal(signal.SIGCONT)

    hit = await until_not_bypassed(cache, key)
    assert hit.status == "HIT" and hit.completion == completion("kept")


async def test_single_flight_still_holds_locally_while_redis_is_down(
    cache: PromptCache, private_redis: PrivateRedis
) -> None:
    await asyncio.to_thread(private_redis.stop)
    key = cache.key_for(chat_request())
    leader = await cache.begin(key)
    assert leader.status == "BYPASS"
    waiters = [asyncio.create_task(cache.begin(key)) for _ in range(5)]
    await asyncio.sleep(0.05)
    await cache.finish(leader, completion("shared"))
    decisions = await asyncio.gather(*waiters)
    # The model was asked once; the others got its answer without Redis.
    assert all(d.status == "HIT" and d.coalesced for d in decisions)
    assert all(d.completion == completion("shared") for d in decisions)


async def test_purge_reports_redis_down_as_503(
    cache: PromptCache, private_redis: PrivateRedis
) -> None:
    await asyncio.to_thread(private_redis.stop)
    with pytest.raises(ApiError) as caught:
        await cache.purge()
    assert caught.value.status == 503 and caught.value.retryable


async def test_a_redis_restart_costs_no_bypass(
    cache: PromptCache, private_redis: PrivateRedis
) -> None:
    # Several pooled connections, all stale once Redis restarts.
    keys = [cache.key_for(chat_request(f"question {i}")) for i in range(5)]
    decisions = await asyncio.gather(*(cache.begin(k) for k in keys))
    await asyncio.gather(*(cache.finish(d, completion()) for d in decisions))

    await asyncio.to_thread(private_redis.stop)
    await asyncio.to_thread(private_redis.start)

    # Nothing asked Redis while it was away, so nothing may be bypassed now.
    statuses = [(await cache.begin(k)).status for k in keys]
    assert "BYPASS" not in statuses
    assert cache.stats()["bypasses"] == 0
