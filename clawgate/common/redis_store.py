"""Redis clients for the stores (agents, sessions): tuned connections, and one mapping of
"Redis cannot serve this" to a retryable 503 that names no host or password."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from clawgate.common.errors import ApiError

log = logging.getLogger("clawgate.redis")

# Errors after which the same call may succeed once Redis is back.
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)
# Redis refusing writes because it cannot persist them (AOF/RDB write failing).
_PERSISTENCE_FAILING = "MISCONF"


# Connections one client may open; more concurrent calls wait for a free one (up to
# POOL_WAIT_S) instead of failing. redis-py 8's plain pool stops at 100 and then raises
# MaxConnectionsError, which under 1,000 concurrent streams read as "Redis is down" and
# switched the prompt cache off.
POOL_SIZE = 512
POOL_WAIT_S = 5.0


def client(url: str, **connection: Any) -> aioredis.Redis:
    """A Redis client whose pool waits for a free connection when all are busy (every
    Redis client of the services is made here; `connection` tunes each connection)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=POOL_SIZE, timeout=POOL_WAIT_S, **connection
    )
    return aioredis.Redis(connection_pool=pool)


def connect(url: str) -> aioredis.Redis:
    """A client tuned for a store: short timeouts, a few quick reconnect attempts."""
    return client(
        url,
        decode_responses=True,
        socket_timeout=2.0,
        socket_connect_timeout=1.0,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
    )


@asynccontextmanager
async def available(store: str) -> AsyncIterator[None]:
    """Turn "Redis is unreachable or refuses writes" into a retryable 503 naming `store`."""
    try:
        yield
    except _UNAVAILABLE as exc:
        log.warning("redis unavailable", extra={"store": store, "error": type(exc).__name__})
        raise store_unavailable(store) from None
    except ResponseError as exc:
        refusing = isinstance(exc, OutOfMemoryError) or str(exc).startswith(_PERSISTENCE_FAILING)
        if not refusing:
            raise
        log.error("redis refuses writes", extra={"store": store, "error": str(exc)})
        raise store_unavailable(store) from None


def store_unavailable(store: str) -> ApiError:
    return ApiError(
        503,
        f"{store} store unavailable (Redis); retry shortly",
        code="store_unavailable",
        retry_after=1,
    )
