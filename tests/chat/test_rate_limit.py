"""Rate-limit pieces that need no stack: reset format, and failing open without Redis
(the limits through Envoy are tested in tests/tenancy/test_rate_limits_e2e.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import redis.asyncio as aioredis

from clawgate.common.config import AuthSettings, RateLimits
from clawgate.common.tokens import CHAT, Principal, current_principal
from clawgate.launcher.processes import free_port
from services.chat.rate_limit import RateLimiter, duration, rate_limit_headers


def test_reset_durations_read_like_openais() -> None:
    assert [duration(s) for s in (0.25, 1, 12.2, 60, 90)] == ["250ms", "1s", "13s", "1m0s", "1m30s"]


async def test_limits_fail_open_when_redis_is_down() -> None:
    dead = aioredis.Redis(port=free_port(), socket_connect_timeout=0.05)
    limits = AuthSettings(rate_limits={"default": RateLimits(1, 1, 1)})
    limiter = RateLimiter(dead, "ns", limits, stream_max_age_s=60)
    current_principal.set(Principal("someone", "tid", frozenset({CHAT})))
    exchange: Any = SimpleNamespace(request=SimpleNamespace(stream=True))
    try:
        for _ in range(3):  # over every limit, yet admitted: Redis cannot count
            await limiter.admit(exchange, context=None)  # type: ignore[arg-type]
        assert rate_limit_headers.get() == ()
    finally:
        current_principal.set(None)
        await limiter.close()
