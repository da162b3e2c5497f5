"""A busy gateway keeps its cache (issue 12): the Redis op timeout measures Redis, not the
event loop. With the loop blocked for longer than the op timeout again and again, as a
process serving many requests is, a healthy Redis is never taken for down: zero BYPASS."""

from __future__ import annotations

import asyncio
import time

from tests.cache.conftest import MakeCache
from tests.cache.helpers import chat_request, completion

OP_TIMEOUT_MS = 50


async def _hog(stop: asyncio.Event, block_s: float) -> None:
    """Blocks the event loop for `block_s` at a time, like CPU-bound request handling."""
    while not stop.is_set():
        time.sleep(block_s)  # noqa: ASYNC251  (blocking on purpose: that is the load)
        await asyncio.sleep(0.001)


async def test_a_busy_loop_never_bypasses_a_healthy_redis(make_cache: MakeCache) -> None:
    cache = make_cache(op_timeout_ms=OP_TIMEOUT_MS)
    stop = asyncio.Event()
    hog = asyncio.create_task(_hog(stop, block_s=2 * OP_TIMEOUT_MS / 1000))
    try:

        async def one(i: int) -> str:
            key = cache.key_for(chat_request(f"busy {i % 16}"))
            decision = await cache.begin(key)
            if decision.status != "HIT":
                await cache.finish(decision, completion(f"answer {i % 16}"))
            return decision.status

        statuses = []
        for _ in range(4):  # 4 waves of 64 concurrent requests
            statuses += await asyncio.gather(*(one(i) for i in range(64)))
    finally:
        stop.set()
        await hog
    assert "BYPASS" not in statuses
    assert cache.stats()["bypasses"] == 0
    assert statuses.count("HIT") > 0


async def test_an_idle_loop_still_notices_a_frozen_redis_quickly(
    make_cache: MakeCache,
) -> None:
    # Redis that never answers (a port that accepts nothing useful) is still BYPASS within
    # about the op timeout when the loop is idle: the lag allowance is only for busy loops.
    import socket

    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(64)  # accepts connections, never answers
    try:
        url = f"redis://127.0.0.1:{sink.getsockname()[1]}/0"
        cache = make_cache(url=url, op_timeout_ms=OP_TIMEOUT_MS)
        started = time.monotonic()
        decision = await cache.begin(cache.key_for(chat_request("frozen")))
        elapsed = time.monotonic() - started
    finally:
        sink.close()
    assert decision.status == "BYPASS"
    assert elapsed < 5  # a hang guard, not a timing assertion
