"""More requests at once than a Redis client has connections (issue 12): they wait for a
connection, they never take the cache for down. redis-py 8's default pool stops at 100
connections and raised MaxConnectionsError, which read as "Redis unavailable" and switched
the cache off for everyone under 1,000 concurrent streams."""

from __future__ import annotations

import asyncio

from clawgate.common import redis_store
from tests.cache.conftest import MakeCache
from tests.cache.helpers import chat_request, completion

AT_ONCE = 600  # beyond redis-py's default pool of 100 and our own of POOL_SIZE


async def test_more_lookups_at_once_than_connections_never_bypass(
    make_cache: MakeCache,
) -> None:
    assert AT_ONCE > redis_store.POOL_SIZE
    # A generous op timeout: this test is about the pool, not about a slow machine.
    cache = make_cache(op_timeout_ms=5000)
    keys = [cache.key_for(chat_request(f"at once {i}")) for i in range(AT_ONCE)]

    decisions = await asyncio.gather(*(cache.begin(key) for key in keys))
    assert {d.status for d in decisions} == {"MISS"}, [d.reason for d in decisions][:5]
    await asyncio.gather(
        *(cache.finish(d, completion(f"answer {i}")) for i, d in enumerate(decisions))
    )

    hits = await asyncio.gather(*(cache.begin(key) for key in keys))
    assert [h.status for h in hits] == ["HIT"] * AT_ONCE
    assert cache.stats()["redis_available"] is True
