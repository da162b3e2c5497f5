"""The failed-auth limit against a real Redis: what each process remembers, and for how
long, so that a busy client does not cost a Redis round trip per call."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from clawgate.common import auth_throttle
from clawgate.common.auth_throttle import MEMO_S, FailedAuthLimiter

ATTEMPTS = 3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(redis_url)
    yield redis
    await redis.aclose()


async def gets(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


def replica(client: aioredis.Redis, namespace: str, clock: Clock) -> FailedAuthLimiter:
    return FailedAuthLimiter(client, namespace, attempts=ATTEMPTS, window_s=60, clock=clock)


async def test_a_clean_address_is_asked_once_per_memo_period(
    client: aioredis.Redis, clock: Clock
) -> None:
    limiter = replica(client, f"t-{uuid.uuid4().hex[:6]}", clock)
    before = await gets(client)
    for _ in range(50):
        assert await limiter.retry_after("192.0.2.1") is None
    assert await gets(client) - before == 1
    clock.now += MEMO_S + 0.01
    assert await limiter.retry_after("192.0.2.1") is None
    assert await gets(client) - before == 2


async def test_failures_block_at_once_where_they_are_seen(
    client: aioredis.Redis, clock: Clock
) -> None:
    limiter = replica(client, f"t-{uuid.uuid4().hex[:6]}", clock)
    assert await limiter.retry_after("192.0.2.2") is None  # memo: clean
    for _ in range(ATTEMPTS):
        await limiter.record_failure("192.0.2.2")
    wait = await limiter.retry_after("192.0.2.2")
    assert wait is not None and 59 <= wait <= 60
    assert await limiter.retry_after("192.0.2.3") is None  # other addresses are not blocked


async def test_another_replica_learns_within_the_memo_period_or_at_its_next_failure(
    client: aioredis.Redis, clock: Clock
) -> None:
    namespace = f"t-{uuid.uuid4().hex[:6]}"
    seeing, other, third = (replica(client, namespace, clock) for _ in range(3))
    for limiter in (other, third):
        assert await limiter.retry_after("192.0.2.4") is None  # both remember "clean"
    for _ in range(ATTEMPTS):
        await seeing.record_failure("192.0.2.4")
    # A failure seen by a replica forgets its "clean" memo: the guess is counted and the
    # replica blocks the address from then on.
    await other.record_failure("192.0.2.4")
    assert await other.retry_after("192.0.2.4") is not None
    # A replica that saw no failure trusts its memo for at most MEMO_S.
    assert await third.retry_after("192.0.2.4") is None
    clock.now += MEMO_S + 0.01
    assert await third.retry_after("192.0.2.4") is not None


async def test_the_memo_is_bounded(
    client: aioredis.Redis, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_throttle, "MEMO_LIMIT", 10)
    limiter = replica(client, f"t-{uuid.uuid4().hex[:6]}", clock)
    for i in range(25):
        assert await limiter.retry_after(f"198.51.100.{i}") is None
    assert len(limiter._memo) <= 10
