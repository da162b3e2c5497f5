"""Redis calls that may be skipped: rate limits and failed-login counters fail open.

Each call gets a short timeout. After a failure, Redis is left alone for `retry_s`, so a
frozen Redis costs one timeout per `retry_s`, not one per request; the outage is logged
once per episode. Authentication never goes through here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

T = TypeVar("T")
log = logging.getLogger("clawgate.redis")


class FailOpen:
    def __init__(self, what: str, timeout_s: float = 0.1, retry_s: float = 5.0) -> None:
        self._what = what
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._skip_until = 0.0
        self._failing = False

    async def run(self, operation: Callable[[], Awaitable[T]]) -> T | None:
        """The operation's result, or None when Redis is (or was just) unavailable."""
        if time.monotonic() < self._skip_until:
            return None
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await operation()
        except (RedisError, OSError, TimeoutError) as exc:
            self._skip_until = time.monotonic() + self._retry_s
            if not self._failing:
                self._failing = True
                log.warning(
                    f"{self._what} skipped: Redis unavailable",
                    extra={"error": type(exc).__name__, "retry_s": self._retry_s},
                )
            return None
        if self._failing:
            self._failing = False
            log.info(f"{self._what}: Redis is back")
        return result
