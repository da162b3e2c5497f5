"""Fixtures of the prompt-cache tests: caches on the shared Redis, each test in its own
namespace, and a private redis-server for the tests that stop and restart Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from clawgate.launcher.processes import Child, free_port, port_open, redis_child
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


@dataclass
class PrivateRedis:
    """A redis-server only this test uses, so it can be stopped, frozen and restarted."""

    port: int
    data_dir: Path
    log_path: Path
    child: Child | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.child = redis_child(self.port, self.data_dir, self.log_path).start()
        self.child.wait_ready(lambda: port_open("127.0.0.1", self.port))

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    port = free_port()
    server = PrivateRedis(port, tmp_path / "redis", tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
