"""Failed-authentication attempts limited per client address, counted in Redis.

After `attempts` failures from one address within `window_s`, every call from it gets 429
before its token is even looked at, until the window ends. Counts live in Redis so every
replica of every service shares them. When Redis is unreachable the limit is skipped (and
logged): tokens are still checked, so this fails open only for the throttle, never auth.

What Redis said about an address is remembered for at most `MEMO_S` (1 s), so a busy
client costs one Redis round trip per second per process, not one per call (it was the
only Redis call of an authenticated agents or health request, and one of four of a chat
request). A failure always goes to Redis and forgets the "clean" memo, so the process that
sees the guesses blocks at once; another replica may still take a valid token from a
just-blocked address for up to `MEMO_S`, while every wrong guess it sees is counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis.asyncio as aioredis

from clawgate.common.config import Config
from clawgate.common.errors import ApiError
from clawgate.common.fail_open import FailOpen
from clawgate.common.redis_store import client as redis_client

CLIENT_ADDRESS_HEADER = "x-clawgate-client-address"  # see launcher/envoy_config.py

MEMO_S = 1.0  # how long a process trusts what Redis said about an address
MEMO_LIMIT = 10_000  # addresses remembered per process (bounded under address spraying)

# KEYS: counter; ARGV: window ms → {count after this failure, ms left in the window}
_RECORD = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}
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
        self,
        client: aioredis.Redis,
        namespace: str,
        attempts: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self._ns = namespace
        self._attempts = attempts
        self._window_s = window_s
        self._record = client.register_script(_RECORD)
        self._guard = FailOpen("failed-auth limit")
        self._clock = clock
        # address → (memo valid until, its window's end or None when clean), monotonic
        self._memo: dict[str, tuple[float, float | None]] = {}

    @classmethod
    def from_config(cls, config: Config) -> FailedAuthLimiter:
        client = redis_client(config.redis_url, socket_timeout=1.0, socket_connect_timeout=0.5)
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
        now = self._clock()
        memo = self._memo.get(address)
        if memo is not None and memo[0] > now:
            return None if memo[1] is None else max(memo[1] - now, 1.0)
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self._key(address))
        pipe.pttl(self._key(address))
        reply = await self._guard.run(pipe.execute)
        if reply is None:
            return None
        if reply[0] is None or int(reply[0]) < self._attempts:
            self._remember(address, None)
            return None
        return self._remember(address, int(reply[1]))

    async def record_failure(self, address: str) -> None:
        if self._attempts <= 0:
            return
        self._memo.pop(address, None)
        window_ms = int(self._window_s * 1000)
        reply = await self._guard.run(
            lambda: self._record(keys=[self._key(address)], args=[window_ms])
        )
        if reply is not None and int(reply[0]) >= self._attempts:
            self._remember(address, int(reply[1]))

    def _remember(self, address: str, blocked_ms: int | None) -> float | None:
        """Memo what Redis said; returns the seconds to wait when the address is blocked."""
        now = self._clock()
        if len(self._memo) >= MEMO_LIMIT:
            self._memo = {a: m for a, m in self._memo.items() if m[0] > now}
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
        if blocked_ms is None:
            self._memo[address] = (now + MEMO_S, None)
            return None
        wait = max(blocked_ms, 1000) / 1000
        self._memo[address] = (now + min(MEMO_S, wait), now + wait)
        return wait

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
