"""Redis clients for the stores (agents, sessions): tuned connections, and one mapping of
"Redis cannot serve this" to a retryable 503 that names no host or password."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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


def connect(url: str) -> aioredis.Redis:
    """A client tuned for a store: short timeouts, a few quick reconnect attempts."""
    return aioredis.Redis.from_url(
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
