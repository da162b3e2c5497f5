"""Failed-authentication attempts limited per client address, counted in Redis.

After `attempts` failures from one address within `window_s`, every call from it gets 429
before its token is even looked at, until the window ends. Counts live in Redis so every
replica of every service shares them. When Redis is unreachable the limit is skipped (and
logged): tokens are still checked, so this fails open only for the throttle, never auth.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from clawgate.common.config import Config
from clawgate.common.errors import ApiError
from clawgate.common.fail_open import FailOpen

CLIENT_ADDRESS_HEADER = "x-clawgate-client-address"  # see launcher/envoy_config.py

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
        self._guard = FailOpen("failed-auth limit")

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
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self._key(address))
        pipe.pttl(self._key(address))
        reply = await self._guard.run(pipe.execute)
        if reply is None or reply[0] is None or int(reply[0]) < self._attempts:
            return None
        return max(int(reply[1]), 1000) / 1000

    async def record_failure(self, address: str) -> None:
        if self._attempts > 0:
            window_ms = int(self._window_s * 1000)
            await self._guard.run(lambda: self._record(keys=[self._key(address)], args=[window_ms]))

    async def close(self) -> None:
        await self._redis.aclose()


def too_many_failures(retry_after: float) -> ApiError:
    return ApiError(
        429,
        "too many failed authentication attempts from this address; "
        f"retry in {max(1, round(retry_after))}s with a valid token",
        code="auth_rate_limited",
        retry_after=retry_after,
    )
