"""Fixtures of the prompt-cache tests: caches on the shared Redis, each test in its own
namespace, (the private redis-server for outage tests is in tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.chat.cache import PromptCache
from tests.cache.helpers import settings_for

MakeCache = Callable[..., PromptCache]


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make_cache(redis_url: str, namespace: str) -> AsyncIterator[MakeCache]:
    """Builds caches on the shared Redis; each has its own client, as a chat process would."""
    caches: list[PromptCache] = []

    def make(
        url: str | None = None, retry_interval_s: float = 1.0, **overrides: Any
    ) -> PromptCache:
        cache = PromptCache.from_url(
            url or redis_url,
            settings_for(**{"namespace": namespace, **overrides}),
            retry_interval_s=retry_interval_s,
        )
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        await cache.close()


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client to look at what the cache wrote."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()
