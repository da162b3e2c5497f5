"""Single flight: concurrent identical misses cause one upstream call, in one process and
across several (two PromptCache instances with their own Redis clients)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from services.chat.cache import CacheDecision, PromptCache
from tests.cache.conftest import MakeCache
from tests.cache.helpers import chat_request, completion


@dataclass
class Upstream:
    """Stands for the ollama call: counts calls, answers after `delay`."""

    delay: float = 0.2
    calls: int = 0
    fail: bool = False
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        self.started.set()
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("upstream failed")
        return completion(f"answer {self.calls}")


async def answer(cache: PromptCache, key: str, upstream: Upstream) -> tuple[str, dict[str, Any]]:
    """What the chat service does for one request."""
    decision = await cache.begin(key)
    if decision.status == "HIT":
        assert decision.completion is not None
        return "HIT", decision.completion
    result: dict[str, Any] | None = None
    try:
        result = await upstream()
        return decision.status, result
    finally:
        await cache.finish(decision, result)


async def command_calls(client: aioredis.Redis, *names: str) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {n: int(stats.get(f"cmdstat_{n}", {}).get("calls", 0)) for n in names}


async def test_twenty_concurrent_requests_make_one_upstream_call(
    make_cache: MakeCache, raw_redis: aioredis.Redis
) -> None:
    cache = make_cache()
    key = cache.key_for(chat_request("same question"))
    upstream = Upstream()
    before = await command_calls(raw_redis, "get", "set")

    requests = asyncio.gather(*(answer(cache, key, upstream) for _ in range(20)))
    await upstream.started.wait()  # the leader is calling upstream, the others wait
    during = await command_calls(raw_redis, "get", "set")
    results = await requests

    # One lookup and one lock attempt for all twenty.
    assert during["get"] - before["get"] == 1
    assert during["set"] - before["set"] == 1
    assert upstream.calls == 1
    assert [status for status, _ in results].count("MISS") == 1
    assert [status for status, _ in results].count("HIT") == 19
    assert all(body == completion("answer 1") for _, body in results)
    stats = cache.stats()
    assert (stats["misses"], stats["hits"], stats["coalesced"], stats["stores"]) == (1, 19, 19, 1)
    assert (await cache.begin(key)).status == "HIT"


async def test_waiters_get_private_copies(make_cache: MakeCache) -> None:
    cache = make_cache()
    key = cache.key_for(chat_request())
    leader = await cache.begin(key)
    waiters = [asyncio.create_task(cache.begin(key)) for _ in range(2)]
    await asyncio.sleep(0.01)
    await cache.finish(leader, completion())
    first, second = [await w for w in waiters]
    assert first.completion is not None and second.completion is not None
    assert first.completion is not second.completion


async def test_concurrent_requests_across_two_processes(make_cache: MakeCache) -> None:
    one, two = make_cache(), make_cache()
    key = one.key_for(chat_request("same question"))
    assert two.key_for(chat_request("same question")) == key
    upstream = Upstream(delay=0.3)

    results = await asyncio.gather(
        *(answer(one, key, upstream) for _ in range(10)),
        *(answer(two, key, upstream) for _ in range(10)),
    )

    assert upstream.calls == 1
    assert [status for status, _ in results].count("MISS") == 1
    assert all(body == completion("answer 1") for _, body in results)
    coalesced = one.stats()["coalesced"] + two.stats()["coalesced"]
    assert coalesced == 19


async def test_remote_waiter_wakes_promptly(make_cache: MakeCache) -> None:
    leader_cache, waiter_cache = make_cache(), make_cache()
    key = leader_cache.key_for(chat_request())
    leader = await leader_cache.begin(key)
    assert leader.status == "MISS"
    waiting = asyncio.create_task(waiter_cache.begin(key))
    await asyncio.sleep(0.3)  # the waiter is subscribed by now
    assert not waiting.done()

    finished_at = time.perf_counter()
    await leader_cache.finish(leader, completion("shared"))
    decision = await waiting
    woke_after = time.perf_counter() - finished_at

    assert (decision.status, decision.coalesced) == ("HIT", True)
    assert decision.completion == completion("shared")
    # Woken by pub/sub, not by the 0.5 s poll.
    assert woke_after < 0.25


async def test_leader_failure_releases_waiters_at_once(
    make_cache: MakeCache, raw_redis: aioredis.Redis
) -> None:
    leader_cache, other = make_cache(), make_cache()
    key = leader_cache.key_for(chat_request())
    leader = await leader_cache.begin(key)
    local = [asyncio.create_task(leader_cache.begin(key)) for _ in range(3)]
    remote = [asyncio.create_task(other.begin(key)) for _ in range(3)]
    await asyncio.sleep(0.3)

    started = time.perf_counter()
    await leader_cache.finish(leader, None)  # upstream failed
    decisions: list[CacheDecision] = await asyncio.gather(*local, *remote)
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0  # not single_flight_wait_s (10 s)
    assert all(d.status == "MISS" and d.completion is None for d in decisions)
    assert not await raw_redis.exists(key)
    # Waiters that fall back call upstream themselves, and may store their answer.
    await other.finish(decisions[-1], completion("retry"))
    assert (await leader_cache.begin(key)).completion == completion("retry")


async def test_upstream_error_is_not_stored_and_every_waiter_retries(
    make_cache: MakeCache,
) -> None:
    cache = make_cache()
    key = cache.key_for(chat_request())
    upstream = Upstream(fail=True)
    results = await asyncio.gather(
        *(answer(cache, key, upstream) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert upstream.calls == 5  # the leader failed, then each waiter tried on its own
    assert cache.stats()["stores"] == 0
    assert (await cache.begin(key)).status == "MISS"


async def test_dead_leader_in_another_process_is_detected_by_lock_expiry(
    make_cache: MakeCache, raw_redis: aioredis.Redis
) -> None:
    cache = make_cache()
    key = cache.key_for(chat_request())
    # A chat process took the lock and died: nobody will release it or publish.
    await raw_redis.set(f"{key}:lock", "dead-process-token", px=700)

    started = time.perf_counter()
    decision = await cache.begin(key)
    waited = time.perf_counter() - started

    assert (decision.status, decision.reason) == ("MISS", "leader-gone")
    assert 0.6 <= waited < 2.0  # after the lock expired, long before the 10 s bound
    await cache.finish(decision, completion())
    assert (await cache.begin(key)).status == "HIT"


async def test_waits_are_bounded(make_cache: MakeCache) -> None:
    leader_cache, other = make_cache(single_flight_wait_s=0.4), make_cache(single_flight_wait_s=0.4)
    key = leader_cache.key_for(chat_request())
    leader = await leader_cache.begin(key)  # never finishes in time

    started = time.perf_counter()
    local, remote = await asyncio.gather(leader_cache.begin(key), other.begin(key))
    waited = time.perf_counter() - started

    assert (local.status, local.reason) == ("MISS", "wait-timeout")
    assert (remote.status, remote.reason) == ("MISS", "wait-timeout")
    assert 0.35 <= waited < 1.0
    await leader_cache.finish(leader, completion())


async def test_cancelled_waiter_does_not_disturb_the_flight(make_cache: MakeCache) -> None:
    cache = make_cache()
    key = cache.key_for(chat_request())
    leader = await cache.begin(key)
    quitter = asyncio.create_task(cache.begin(key))
    stayer = asyncio.create_task(cache.begin(key))
    await asyncio.sleep(0.05)
    quitter.cancel()
    await asyncio.sleep(0.05)
    await cache.finish(leader, completion())
    assert (await stayer).status == "HIT"
    assert quitter.cancelled()


async def test_cancelled_leader_releases_local_waiters(make_cache: MakeCache) -> None:
    cache = make_cache()
    key = cache.key_for(chat_request())
    upstream = Upstream(delay=5)
    leader = asyncio.create_task(answer(cache, key, upstream))
    await upstream.started.wait()
    waiter = asyncio.create_task(cache.begin(key))
    await asyncio.sleep(0.05)
    leader.cancel()  # the client went away: finish(None) runs in the finally
    decision = await asyncio.wait_for(waiter, 1.0)
    assert decision.status == "MISS"
    assert cache.stats()["stores"] == 0


async def test_a_wait_never_outlives_the_request_deadline(make_cache: MakeCache) -> None:
    # The single-flight bound (30 s here) used to apply whatever the request's deadline.
    leader_cache = make_cache(single_flight_wait_s=30)
    other = make_cache(single_flight_wait_s=30)
    key = leader_cache.key_for(chat_request("deadline-bound wait"))
    leader = await leader_cache.begin(key)  # never finishes while the others wait
    waits = asyncio.gather(
        leader_cache.begin(key, max_wait_s=0.2), other.begin(key, max_wait_s=0.2)
    )
    local, remote = await asyncio.wait_for(waits, 10)  # hang guard only
    assert (local.status, local.reason) == ("MISS", "wait-timeout")
    assert (remote.status, remote.reason) == ("MISS", "wait-timeout")
    await leader_cache.finish(leader, completion())
