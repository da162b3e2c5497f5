"""Failed-authentication attempts limited per client address, counted in Redis.

After `attempts` failures from one address within `window_s`, every call from it gets 429
before its token is even looked at, until the window ends. Counts live in Redis so every
replica of every service shares them. When Redis is unreachable the limit is skipped (and
logged): tokens are still checked, so this fails open only for the throttle, never auth.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from clawgate.common.config import Config
from clawgate.common.errors import ApiError

log = logging.getLogger("clawgate.auth")

CLIENT_ADDRESS_HEADER = "x-clawgate-client-address"  # see launcher/envoy_config.py
# Redis must answer quickly; an auth check never waits on a slow Redis.
OP_TIMEOUT_S = 0.1
# Log "Redis down" at most this often.
WARN_EVERY_S = 30.0

# KEYS: counter; ARGV: window ms → count after this failure
_RECORD = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


def client_address(metadata: list[tuple[str, str]], peer: str) -> str:
    """The caller's address: what Envoy saw (`x-clawgate-client-address`, which Envoy
    overwrites on every request), else the gRPC peer (`ipv4:1.2.3.4:5678` → `1.2.3.4`)."""
    for key, value in metadata:
        if key == CLIENT_ADDRESS_HEADER and value.strip():
            return value.strip()[:64]
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return rest.rsplit(":", 1)[0] if rest else peer


class FailedAuthLimiter:
    def __init__(
        self, client: aioredis.Redis, namespace: str, attempts: int, window_s: float
    ) -> None:
        self._redis = client
        self._ns = namespace
        self._attempts = attempts
        self._window_s = window_s
        self._record = client.register_script(_RECORD)
        self._warned_at = -WARN_EVERY_S

    @classmethod
    def from_config(cls, config: Config) -> FailedAuthLimiter:
        client = aioredis.Redis.from_url(
            config.redis_url, socket_timeout=1.0, socket_connect_timeout=0.5
        )
        auth = config.auth
        return cls(
            client, config.cache.namespace, auth.failed_auth_attempts, auth.failed_auth_window_s
        )

    def _key(self, address: str) -> str:
        return f"{self._ns}:authfail:{address}"

    async def retry_after(self, address: str) -> float | None:
        """Seconds until `address` may try again, or None when it may try now."""
        if self._attempts <= 0:
            return None
        try:
            async with asyncio.timeout(OP_TIMEOUT_S):
                pipe = self._redis.pipeline(transaction=False)
                pipe.get(self._key(address))
                pipe.pttl(self._key(address))
                count, ttl_ms = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self._warn(exc)
            return None
        if count is None or int(count) < self._attempts:
            return None
        return max(int(ttl_ms), 1000) / 1000

    async def record_failure(self, address: str) -> None:
        if self._attempts <= 0:
            return
        window_ms = int(self._window_s * 1000)
        try:
            async with asyncio.timeout(OP_TIMEOUT_S):
                await self._record(keys=[self._key(address)], args=[window_ms])
        except (RedisError, OSError, TimeoutError) as exc:
            self._warn(exc)

    async def close(self) -> None:
        await self._redis.aclose()

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "failed-auth limit skipped: Redis unavailable", extra={"error": type(exc).__name__}
            )


def too_many_failures(retry_after: float) -> ApiError:
    return ApiError(
        429,
        "too many failed authentication attempts from this address; "
        f"retry in {max(1, round(retry_after))}s with a valid token",
        code="auth_rate_limited",
        retry_after=retry_after,
    )
