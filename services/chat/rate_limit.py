"""Rate limits per token, counted in Redis so they hold across chat replicas.

Per token (config `auth.rateLimits`, by token name, else `default`):
- requests per minute: counted when a request is admitted;
- tokens per minute (prompt + completion): charged after the answer; a request is refused
  while the current minute is already over the limit;
- concurrent streams: streaming requests in flight (a sorted set of request ids, so a
  crashed replica's entries age out instead of leaking).

Every admitted chat response carries OpenAI's `x-ratelimit-*` headers; a refusal is a 429
with `Retry-After` and the same headers. When Redis is unreachable the limits are skipped
(logged): rate limits fail open, authentication never does.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

import grpc
import redis.asyncio as aioredis

from clawgate.common.config import AuthSettings, Config, RateLimits
from clawgate.common.errors import ApiError
from clawgate.common.fail_open import FailOpen
from clawgate.common.redis_store import client as redis_client
from clawgate.common.tokens import Principal, current_principal
from services.chat.pipeline import Exchange

WINDOW_MS = 60_000
Headers = tuple[tuple[str, str], ...]

# The `x-ratelimit-*` headers of the current call, sent with the response's first bytes.
rate_limit_headers: contextvars.ContextVar[Headers] = contextvars.ContextVar(
    "clawgate_rate_limit_headers", default=()
)

# KEYS: requests this window, tokens this window, open streams (zset)
# ARGV: rpm, tpm, max streams, now ms, window ms, request id, is stream, stream max age ms
# → {verdict, requests, tokens, streams}; verdict: ok | requests | tokens | streams
_ADMIT = """
local req = tonumber(redis.call('GET', KEYS[1]) or '0')
local tok = tonumber(redis.call('GET', KEYS[2]) or '0')
local now, stream = tonumber(ARGV[4]), ARGV[7] == '1'
local streams = 0
if stream then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[8]))
  streams = redis.call('ZCARD', KEYS[3])
end
local rpm, tpm, most = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if rpm > 0 and req >= rpm then return {'requests', req, tok, streams} end
if tpm > 0 and tok >= tpm then return {'tokens', req, tok, streams} end
if stream and most > 0 and streams >= most then return {'streams', req, tok, streams} end
req = redis.call('INCR', KEYS[1])
if req == 1 then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]) * 2) end
if stream then
  redis.call('ZADD', KEYS[3], now, ARGV[6])
  redis.call('PEXPIRE', KEYS[3], ARGV[8])
  streams = streams + 1
end
return {'ok', req, tok, streams}
"""

# KEYS: tokens this window, open streams; ARGV: tokens used, window ms, request id
_SETTLE = """
if tonumber(ARGV[1]) > 0 then
  redis.call('INCRBY', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
end
redis.call('ZREM', KEYS[2], ARGV[3])
return 1
"""


@dataclass(frozen=True)
class Window:
    """Counts of one token in the current minute."""

    limits: RateLimits
    requests: int
    tokens: int
    reset_s: float

    def headers(self) -> Headers:
        out: list[tuple[str, str]] = []
        reset = duration(self.reset_s)
        if self.limits.requests_per_minute:
            rpm = self.limits.requests_per_minute
            out += [
                ("x-ratelimit-limit-requests", str(rpm)),
                ("x-ratelimit-remaining-requests", str(max(0, rpm - self.requests))),
                ("x-ratelimit-reset-requests", reset),
            ]
        if self.limits.tokens_per_minute:
            tpm = self.limits.tokens_per_minute
            out += [
                ("x-ratelimit-limit-tokens", str(tpm)),
                ("x-ratelimit-remaining-tokens", str(max(0, tpm - self.tokens))),
                ("x-ratelimit-reset-tokens", reset),
            ]
        return tuple(out)


class RateLimited(ApiError):
    """429 that also carries the `x-ratelimit-*` headers."""

    def __init__(self, message: str, retry_after: float, headers: Headers) -> None:
        super().__init__(429, message, code="rate_limit_exceeded", retry_after=retry_after)
        self.headers = headers

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return (*super().trailing_metadata(), *self.headers)


def duration(seconds: float) -> str:
    """OpenAI's reset format: `850ms`, `12s`, `1m30s`."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


class RateLimiter:
    def __init__(
        self, client: aioredis.Redis, namespace: str, auth: AuthSettings, stream_max_age_s: float
    ) -> None:
        self._redis = client
        self._ns = namespace
        self._auth = auth
        self._stream_max_age_ms = int(stream_max_age_s * 1000)
        self._admit = client.register_script(_ADMIT)
        self._settle = client.register_script(_SETTLE)
        self._tasks: set[asyncio.Task[None]] = set()
        self._guard = FailOpen("rate limits")

    @classmethod
    def from_config(cls, config: Config) -> RateLimiter:
        client = redis_client(config.redis_url, socket_timeout=1.0, socket_connect_timeout=0.5)
        # A stream can last as long as the request deadline; older entries are stale.
        max_age = config.chat.request_timeout_s + 60
        return cls(client, config.cache.namespace, config.auth, max_age)

    def _keys(self, principal: Principal, window: int) -> list[str]:
        base = f"{self._ns}:ratelimit:{principal.token_id}"
        return [f"{base}:requests:{window}", f"{base}:tokens:{window}", f"{base}:streams"]

    async def admit(self, exchange: Exchange, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Admit one chat request of the current caller or raise RateLimited; the
        exchange's usage is charged when the call ends (`context` done callback)."""
        principal = current_principal.get()
        if principal is None:
            return
        limits = self._auth.limits_for(principal.name)
        if limits == RateLimits(0, 0, 0):
            return
        now_ms = int(time.time() * 1000)
        window = now_ms // WINDOW_MS
        keys = self._keys(principal, window)
        request_id = secrets.token_hex(8)
        stream = bool(exchange.request.stream)
        args: list[str | int] = [
            limits.requests_per_minute, limits.tokens_per_minute, limits.concurrent_streams,
            now_ms, WINDOW_MS, request_id, "1" if stream else "0", self._stream_max_age_ms,
        ]  # fmt: skip
        reply = await self._guard.run(lambda: self._admit(keys=keys, args=args))
        if reply is None:
            return
        verdict, requests, tokens, _ = reply
        reset_s = ((window + 1) * WINDOW_MS - now_ms) / 1000
        counts = Window(limits, int(requests), int(tokens), reset_s)
        verdict = verdict.decode() if isinstance(verdict, bytes) else str(verdict)
        if verdict != "ok":
            raise _refusal(verdict, principal, limits, counts)
        rate_limit_headers.set(counts.headers())

        def settle(_: object) -> None:
            self._spawn(exchange, principal, request_id, stream)

        context.add_done_callback(settle)  # type: ignore[arg-type]  # the stubs want a class

    def _spawn(
        self, exchange: Exchange, principal: Principal, request_id: str, stream: bool
    ) -> None:
        task = asyncio.get_running_loop().create_task(
            self._charge(exchange, principal, request_id, stream)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _charge(
        self, exchange: Exchange, principal: Principal, request_id: str, stream: bool
    ) -> None:
        completion = exchange.completion
        usage = (completion or {}).get("usage") or {}
        used = int(usage.get("total_tokens") or 0) or int(exchange.prompt_estimate or 0)
        if not used and not stream:
            return
        window = int(time.time() * 1000) // WINDOW_MS
        _, tokens_key, streams_key = self._keys(principal, window)
        keys = [tokens_key, streams_key]
        await self._guard.run(lambda: self._settle(keys=keys, args=[used, WINDOW_MS, request_id]))

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
        await self._redis.aclose()


def _refusal(verdict: str, principal: Principal, limits: RateLimits, counts: Window) -> RateLimited:
    who = f"token '{principal.name}'"
    if verdict == "streams":
        return RateLimited(
            f"Rate limit reached: {limits.concurrent_streams} concurrent streams for {who}; "
            "wait for one to finish, then retry.",
            1.0,
            counts.headers(),
        )
    if verdict == "tokens":
        what = f"{limits.tokens_per_minute} tokens per minute"
    else:
        what = f"{limits.requests_per_minute} requests per minute"
    return RateLimited(
        f"Rate limit reached: {what} for {who}; retry in {duration(counts.reset_s)}.",
        counts.reset_s,
        counts.headers(),
    )
