"""Redis prompt cache: identical requests are answered once by the model, then from Redis.

How the chat service uses it, per request:

    key = cache.key_for(request.body, token_id)
    decision = await cache.begin(key, no_cache=cc.no_cache, no_store=cc.no_store)
    if decision.status == "HIT":
        replay decision.completion            # JSON or SSE, whatever the client asked
    else:
        try:    completion = call the model
        finally: await cache.finish(decision, completion or None)   # ALWAYS, even on error

Single flight: the first miss for a key leads; identical requests in the same process wait
on its asyncio future, and those in other chat processes find its Redis lock
(`{key}:lock`, token-valued, PX = single_flight_wait_s) and wait for the stored answer (a
pub/sub wake-up plus polling). Waiters give up after single_flight_wait_s, as soon as the
leader reports failure, or when the lock disappears without an answer (leader died), and
then call the model themselves.

Redis trouble never fails a request: every operation has a short deadline
(op_timeout_ms); after a failure the cache is bypassed without touching Redis and probed
again once per RETRY_INTERVAL_S, so caching resumes by itself when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from clawgate.common.config import CacheSettings
from clawgate.common.errors import ApiError
from clawgate.common.loop_lag import LoopLag
from clawgate.common.redis_store import client as redis_client

from .cache_key import entry_key, entry_prefix, glob_escape, is_entry_key, request_digest
from .cache_metrics import REDIS_ERRORS, REDIS_SECONDS
from .cache_notify import FlightNotifier
from .cache_stats import CacheCounters

log = logging.getLogger("clawgate.chat.cache")

CacheStatus = Literal["HIT", "MISS", "BYPASS"]
T = TypeVar("T")

COMPLETE_FINISH_REASONS = frozenset({"stop", "length", "tool_calls"})
# After Redis failed, skip it for this long before one request probes it again.
RETRY_INTERVAL_S = 1.0
# Most a Redis operation may wait beyond its op timeout because the event loop was busy.
MAX_LAG_EXTENSION_S = 1.0
# At most one "Redis unavailable" warning per this many seconds.
WARN_INTERVAL_S = 10.0
# Cross-process waiters re-check the entry this often; faster while the pub/sub
# subscription is not confirmed (no wake-up would come).
POLL_S = 0.5
POLL_UNSUBSCRIBED_S = 0.025
# Refresh of the approximate entry count shown in stats.
ENTRIES_REFRESH_S = 5.0
# Admin purge walks the keyspace; it may take longer than a request-path operation.
PURGE_TIMEOUT_S = 30.0
# close() waits this long for stores still in flight.
CLOSE_TIMEOUT_S = 2.0
ENTRY_FORMAT = 1

# Look the entry up and, when it is absent, take the single-flight lock: one round trip.
# KEYS: entry, lock. ARGV: lock token, lock ms. → {0, entry} | {1} (lock taken) | {2} (held)
_LOOKUP_LUA = """
local entry = redis.call('GET', KEYS[1])
if entry then return {0, entry} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
return {2}
"""
_FOUND, _LOCKED, _HELD = 0, 1, 2

# Store the answer (if any), release the lock if we still own it, wake other processes.
# KEYS: entry, lock, index. ARGV: value ('' = none), ttl s, lock token ('' = none),
# channel, index score (expiry, ms).
_FINISH_LUA = """
local stored = 0
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  redis.call('ZADD', KEYS[3], ARGV[5], KEYS[1])
  stored = 1
end
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[4], KEYS[1])
return stored
"""


class _RedisTrouble(Exception):
    """Redis failed or was too slow; the cache is bypassed for this request."""


@dataclass
class _Flight:
    """An in-flight answer for one key in this process; resolves to the completion JSON."""

    future: asyncio.Future[str | None]
    started: float


@dataclass
class CacheDecision:
    """What begin() found, and what finish() needs to complete the flight."""

    status: CacheStatus
    key: str
    # The stored OpenAI chat.completion object on HIT (a private copy; mutate freely).
    completion: dict[str, Any] | None = None
    # finish() will not store the answer (client said no-store, or cache off / Redis down).
    no_store: bool = False
    # A HIT that waited for an identical in-flight request instead of reading Redis.
    coalesced: bool = False
    # Why this status: lookup, no-cache, disabled, redis-down, leader-failed,
    # leader-gone, wait-timeout. For logs and debugging.
    reason: str = "lookup"
    # Time spent in begin(), milliseconds.
    elapsed_ms: float = 0.0
    _flight: _Flight | None = field(default=None, repr=False)
    _lock_token: str | None = field(default=None, repr=False)
    _finished: bool = field(default=False, repr=False)


def is_complete(completion: object) -> bool:
    """Whether `completion` is a finished OpenAI chat.completion worth storing."""
    if not isinstance(completion, dict) or "error" in completion:
        return False
    if completion.get("object", "chat.completion") != "chat.completion":
        return False
    choices = completion.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        return False
    choice = choices[0]
    reason = choice.get("finish_reason")
    message = choice.get("message")
    if reason not in COMPLETE_FINISH_REASONS or not isinstance(message, dict):
        return False
    if message.get("role", "assistant") != "assistant":
        return False
    usage = completion.get("usage")
    if usage is not None and not isinstance(usage, dict):
        return False
    content = message.get("content")
    if reason == "tool_calls":
        calls = message.get("tool_calls")
        return (
            isinstance(calls, list)
            and bool(calls)
            and (content is None or isinstance(content, str))
        )
    return isinstance(content, str)


class PromptCache:
    """The prompt cache of one chat process. Safe for concurrent use on one event loop."""

    def __init__(
        self,
        redis: aioredis.Redis,
        settings: CacheSettings,
        *,
        retry_interval_s: float = RETRY_INTERVAL_S,
        owns_client: bool = False,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._owns_client = owns_client
        self._op_timeout = max(settings.op_timeout_ms, 1) / 1000
        self._wait_s = max(settings.single_flight_wait_s, 0.0)
        # The lock outlives a dead leader by at most the longest wait; waiters then stop.
        self._lock_ms = max(int(self._wait_s * 1000), 1000)
        self._retry_interval = retry_interval_s
        self._index_key = f"{settings.namespace}:cache-index:v1"
        self._channel = f"{settings.namespace}:cache:v1:done"
        self._lookup_script = redis.register_script(_LOOKUP_LUA)
        self._finish_script = redis.register_script(_FINISH_LUA)
        self._notifier = FlightNotifier(redis, self._channel)
        self._flights: dict[str, _Flight] = {}
        self._counters = CacheCounters()
        self._redis_ok = True
        self._next_probe = 0.0
        self._last_warning = -WARN_INTERVAL_S
        self._entries = 0
        self._entries_at = -ENTRIES_REFRESH_S
        self._background: set[asyncio.Task[Any]] = set()
        self._lag = LoopLag()

    @classmethod
    def from_url(
        cls, url: str, settings: CacheSettings, *, retry_interval_s: float = RETRY_INTERVAL_S
    ) -> PromptCache:
        """A cache with its own Redis client (closed by close())."""
        client = redis_client(
            url,
            # After a Redis restart every pooled connection is stale: reconnect and retry
            # once at once, instead of failing (or backing off past the op timeout).
            retry=Retry(NoBackoff(), 1),
            socket_connect_timeout=max(settings.op_timeout_ms / 1000, 0.05) * 4,
            health_check_interval=30,
        )
        return cls(client, settings, retry_interval_s=retry_interval_s, owns_client=True)

    # -- keys --------------------------------------------------------------------------
    def key_for(self, request: Mapping[str, Any], token_id: str | None = None) -> str:
        """Redis key of the answer to `request` (the normalised OpenAI request)."""
        model = request.get("model")
        # The caller passes a token id only when tokens are told apart (auto: >1 token).
        isolated = token_id if self._settings.isolate_tokens is not False else None
        digest = request_digest(request, isolated)
        return entry_key(self._settings.namespace, model if isinstance(model, str) else "_", digest)

    # -- request path ------------------------------------------------------------------
    async def begin(
        self,
        key: str,
        *,
        no_cache: bool = False,
        no_store: bool = False,
        max_wait_s: float | None = None,
    ) -> CacheDecision:
        """Look `key` up: HIT (with the answer), MISS (call the model, then finish()), or
        BYPASS (cache off or Redis unusable: call the model, then finish()).

        `max_wait_s` (what is left of the request's deadline) bounds the single-flight wait
        for an identical request in flight, so a waiter never outlives its own deadline.
        """
        started = time.perf_counter()
        wait_s = self._wait_s if max_wait_s is None else max(0.0, min(self._wait_s, max_wait_s))
        decision = await self._begin(key, no_cache=no_cache, no_store=no_store, wait_s=wait_s)
        decision.elapsed_ms = (time.perf_counter() - started) * 1000
        self._counters.count(decision.status, coalesced=decision.coalesced)
        if decision.status == "HIT" and not decision.coalesced:
            self._counters.record_hit_latency(decision.elapsed_ms)
        return decision

    async def finish(
        self, decision: CacheDecision, completion: dict[str, Any] | None, *, wait: bool = True
    ) -> None:
        """End a MISS/BYPASS: store `completion` if complete, release the lock, wake waiters.

        Pass None when the model call failed, was cut, or was cancelled. Never raises
        (errors are logged); the store completes even if the caller is cancelled.
        `wait=False` returns before the write reaches Redis (the answer need not wait for
        its own store: until it lands, an identical request waits on the lock and is
        woken by the store's publish, so it still gets the answer).
        """
        if decision._finished or decision.status == "HIT":
            return
        decision._finished = True
        try:
            payload = _completion_json(completion)
        except Exception:  # a malformed completion must not break the caller's cleanup
            log.exception("prompt cache: cannot read the completion; not stored")
            payload = None
        if decision._flight is not None:
            # Before any await: local waiters wake even if this task is cancelled next.
            self._settle(decision.key, decision._flight, payload)
        store = payload if decision.status == "MISS" and not decision.no_store else None
        if store is None and decision._lock_token is None:
            return
        if not self._redis_ok and decision._lock_token is None:
            # Redis is known down: skip the store instead of waiting for a timeout. A held
            # lock is still released (bounded by the op timeout), or other processes'
            # waiters would sit out its expiry after a passing hiccup.
            return
        task = asyncio.create_task(self._write(decision, store))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        if wait:
            await asyncio.shield(task)

    # -- admin -------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Outcome counters of this process (metrics read them at scrape time)."""
        c = self._counters
        return {
            "hit": c.hits,
            "miss": c.misses,
            "bypass": c.bypasses,
            "store": c.stores,
            "join": c.coalesced,
        }

    def stats(self) -> dict[str, float | bool]:
        """Counters of this process; `entries` is the deployment's (refreshed lazily)."""
        self._refresh_entries_soon()
        p50, p99 = self._counters.latency_percentiles()
        c = self._counters
        return {
            "hits": float(c.hits),
            "misses": float(c.misses),
            "bypasses": float(c.bypasses),
            "stores": float(c.stores),
            "coalesced": float(c.coalesced),
            "hit_latency_p50_ms": round(p50, 3),
            "hit_latency_p99_ms": round(p99, 3),
            "redis_available": self._redis_ok,
            "entries": float(self._entries),
            "enabled": self._settings.enabled,
        }

    async def purge(self, model: str | None = None) -> int:
        """Delete this deployment's entries (only `model`'s when given); returns how many.

        Raises ApiError 503 when Redis cannot be reached.
        """
        prefix = entry_prefix(self._settings.namespace, model or None)
        pattern = glob_escape(prefix) + "*"
        deleted = 0
        try:
            async with asyncio.timeout(PURGE_TIMEOUT_S):
                batch: list[bytes | str] = []
                async for raw in self._redis.scan_iter(match=pattern, count=500):
                    name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                    if is_entry_key(name, prefix, exact_model=bool(model)):
                        batch.append(raw)
                    if len(batch) >= 500:
                        deleted += await self._unlink(batch)
                        batch = []
                if batch:
                    deleted += await self._unlink(batch)
                if not model:
                    await self._redis.unlink(self._index_key)
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_failed(exc)
            raise ApiError(
                503,
                "The prompt cache is unavailable: Redis did not answer. Try again later.",
                code="cache_unavailable",
                retry_after=1.0,
            ) from exc
        self._redis_recovered()
        self._entries_at = -ENTRIES_REFRESH_S  # recount at the next stats()
        log.info("prompt cache purged", extra={"deleted": deleted, "model": model or "*"})
        return deleted

    async def close(self) -> None:
        """Stop the subscription, let pending stores finish (briefly), close owned client."""
        await self._lag.close()
        await self._notifier.close()
        pending = list(self._background)
        if pending:
            _, late = await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S)
            for task in late:
                task.cancel()
        for flight_key, flight in list(self._flights.items()):
            self._settle(flight_key, flight, None)
        if self._owns_client:
            await self._redis.aclose()

    # -- internals: lookup and single flight ---------------------------------------------
    async def _begin(
        self, key: str, *, no_cache: bool, no_store: bool, wait_s: float
    ) -> CacheDecision:
        if not self._settings.enabled:
            return CacheDecision("BYPASS", key, no_store=True, reason="disabled")
        if no_cache:
            # Skip the lookup and the flight; the fresh answer replaces the stored one.
            if not self._redis_ok:
                return CacheDecision("BYPASS", key, no_store=True, reason="redis-down")
            return CacheDecision("MISS", key, no_store=no_store, reason="no-cache")

        flight = self._live_flight(key)
        if flight is not None:
            return await self._join(key, flight, wait_s)
        if no_store:
            # Reads are fine, but a request that will not store must not lead others.
            return await self._lookup_only(key)

        flight = _Flight(asyncio.get_running_loop().create_future(), time.monotonic())
        self._flights[key] = flight
        try:
            return await self._lead(key, flight, wait_s)
        except BaseException:
            self._settle(key, flight, None)
            raise

    async def _lead(self, key: str, flight: _Flight, wait_s: float) -> CacheDecision:
        """First request for `key` in this process: read Redis and, on a miss, take the
        lock, in one round trip (_LOOKUP_LUA)."""
        bypass = CacheDecision("BYPASS", key, no_store=True, reason="redis-down", _flight=flight)
        if not self._redis_usable():
            return bypass
        token = secrets.token_hex(16)
        lock = f"{key}:lock"
        try:
            reply = await self._call(
                lambda: self._lookup_script(keys=[key, lock], args=[token, self._lock_ms])
            )
            found = int(reply[0])
            if found == _FOUND:
                completion = _decode_entry(reply[1])
                if completion is not None:
                    self._settle(key, flight, _completion_json(completion))
                    return CacheDecision("HIT", key, completion)
                # An unreadable entry (older format, damage): answer anew and replace it.
                acquired = await self._call(
                    lambda: self._redis.set(lock, token, nx=True, px=self._lock_ms)
                )
                found = _LOCKED if acquired else _HELD
        except _RedisTrouble:
            return bypass
        if found == _LOCKED:
            return CacheDecision("MISS", key, _flight=flight, _lock_token=token)
        # Another chat process is computing this answer: wait for it on behalf of every
        # local request for the key.
        status, payload, reason = await self._wait_remote(key, wait_s)
        self._settle(key, flight, payload)
        if payload is not None:
            return _coalesced_hit(key, payload)
        return CacheDecision(status, key, no_store=status == "BYPASS", reason=reason)

    async def _lookup_only(self, key: str) -> CacheDecision:
        if not self._redis_usable():
            return CacheDecision("BYPASS", key, no_store=True, reason="redis-down")
        try:
            raw = await self._call(lambda: self._redis.get(key))
        except _RedisTrouble:
            return CacheDecision("BYPASS", key, no_store=True, reason="redis-down")
        completion = _decode_entry(raw)
        if completion is not None:
            return CacheDecision("HIT", key, completion)
        return CacheDecision("MISS", key, no_store=True)

    async def _join(self, key: str, flight: _Flight, wait_s: float) -> CacheDecision:
        """Wait for this process's in-flight answer (bounded), else fall back to the model."""
        payload: str | None = None
        reason = "leader-failed"
        try:
            async with asyncio.timeout(wait_s):
                # shield: a waiter that gives up must not cancel the shared future.
                payload = await asyncio.shield(flight.future)
        except TimeoutError:
            reason = "wait-timeout"
        if payload is not None:
            return _coalesced_hit(key, payload)
        if not self._redis_ok:
            return CacheDecision("BYPASS", key, no_store=True, reason="redis-down")
        return CacheDecision("MISS", key, reason=reason)

    async def _wait_remote(self, key: str, wait_s: float) -> tuple[CacheStatus, str | None, str]:
        """Wait for another process's leader: (status, completion JSON or None, reason)."""
        deadline = time.monotonic() + wait_s
        self._notifier.start()
        with self._notifier.watch(key) as event:
            while True:
                event.clear()  # before reading, so a publish during the read is not lost
                try:
                    raw, holder = await self._call(lambda: self._redis.mget(key, f"{key}:lock"))
                except _RedisTrouble:
                    return "BYPASS", None, "redis-down"
                completion = _decode_entry(raw)
                if completion is not None:
                    return "HIT", _completion_json(completion), "coalesced"
                if holder is None:
                    # Released without an answer (leader failed) or expired (leader died).
                    return "MISS", None, "leader-gone"
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "MISS", None, "wait-timeout"
                poll = POLL_S if self._notifier.subscribed else POLL_UNSUBSCRIBED_S
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(poll, remaining)):
                        await event.wait()

    def _live_flight(self, key: str) -> _Flight | None:
        flight = self._flights.get(key)
        if flight is None:
            return None
        if flight.future.done() or time.monotonic() - flight.started > self._wait_s:
            # Finished, or its leader never called finish(): do not make anyone wait on it.
            self._flights.pop(key, None)
            return None
        return flight

    def _settle(self, key: str, flight: _Flight, payload: str | None) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.future.done():
            flight.future.set_result(payload)

    # -- internals: writes ---------------------------------------------------------------
    async def _write(self, decision: CacheDecision, payload: str | None) -> None:
        """One round trip: store, release the lock, publish. Logs instead of raising."""
        value = ""
        if payload is not None:
            value = (
                f'{{"format":{ENTRY_FORMAT},"stored_at":{time.time():.3f},"completion":{payload}}}'
            )
        ttl = max(self._settings.ttl_seconds, 1)
        expires_ms = int((time.time() + ttl) * 1000)
        try:
            stored = await self._call(
                lambda: self._finish_script(
                    keys=[decision.key, f"{decision.key}:lock", self._index_key],
                    args=[value, ttl, decision._lock_token or "", self._channel, expires_ms],
                )
            )
        except _RedisTrouble:
            return
        except Exception:
            log.exception("prompt cache store failed")
            return
        if stored:
            self._counters.stores += 1

    async def _unlink(self, keys: list[bytes | str]) -> int:
        deleted = await self._redis.unlink(*keys)
        await self._redis.zrem(self._index_key, *keys)
        return deleted

    def _refresh_entries_soon(self) -> None:
        now = time.monotonic()
        if now - self._entries_at < ENTRIES_REFRESH_S or not self._redis_ok:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # called outside the event loop: keep the last known count
        self._entries_at = now
        task = asyncio.create_task(self._count_entries())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _count_entries(self) -> None:
        now_ms = int(time.time() * 1000)

        async def count() -> int:
            # Drop index members whose entry expired, then count the rest.
            await self._redis.zremrangebyscore(self._index_key, "-inf", now_ms)
            return await self._redis.zcard(self._index_key)

        with contextlib.suppress(_RedisTrouble):
            self._entries = await self._call(count)

    # -- internals: Redis health ---------------------------------------------------------
    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis operation under the op timeout; failures become _RedisTrouble.

        The op timeout is meant for Redis, not for this process: when the event loop
        itself is late (a busy process), the budget grows by the loop's recent lag, and a
        timeout is blamed on Redis only if the loop kept up meanwhile. Otherwise a busy
        gateway would switch its cache off exactly when it is needed (BYPASS under load).
        """
        self._lag.ensure_running()
        started = time.perf_counter()
        task = asyncio.ensure_future(operation())
        try:
            try:
                budget = self._op_timeout + 2 * self._lag.recent()
                result = await asyncio.wait_for(asyncio.shield(task), budget)
            except TimeoutError:
                await asyncio.sleep(0)  # a reply read in this same loop turn still counts
                lag = self._lag.recent()
                if not task.done() and lag < self._op_timeout / 2:
                    raise  # the loop kept up: Redis is slow or gone
                # The loop was the slow one: give the same operation the lag once more.
                extra = min(max(2 * lag, self._op_timeout), MAX_LAG_EXTENSION_S)
                result = await asyncio.wait_for(task, extra)
        except (RedisError, OSError, TimeoutError) as exc:
            task.cancel()
            REDIS_ERRORS.inc()
            self._redis_failed(exc)
            raise _RedisTrouble from exc
        except BaseException:
            task.cancel()
            raise
        finally:
            REDIS_SECONDS.observe(time.perf_counter() - started)
        self._redis_recovered()
        return result

    def _redis_usable(self) -> bool:
        if self._redis_ok:
            return True
        now = time.monotonic()
        if now < self._next_probe:
            return False
        self._next_probe = now + self._retry_interval  # one probe per interval
        return True

    def _redis_failed(self, exc: BaseException) -> None:
        self._redis_ok = False
        now = time.monotonic()
        self._next_probe = now + self._retry_interval
        if now - self._last_warning >= WARN_INTERVAL_S:
            self._last_warning = now
            log.warning(
                "prompt cache bypassed: Redis unavailable (%s); answering from the model",
                "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__,
                extra={"event": "cache_redis_unavailable"},
            )

    def _redis_recovered(self) -> None:
        if not self._redis_ok:
            self._redis_ok = True
            log.info("prompt cache: Redis reachable again, caching resumed")


def _completion_json(completion: object) -> str | None:
    """The completion as compact JSON if it is complete, else None."""
    if not is_complete(completion):
        return None
    try:
        return json.dumps(completion, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        log.warning("prompt cache: completion is not JSON-serialisable; not stored")
        return None


def _decode_entry(raw: bytes | str | None) -> dict[str, Any] | None:
    """The completion inside a stored entry; None when absent or unreadable."""
    if raw is None:
        return None
    try:
        entry = json.loads(raw)
    except ValueError:
        log.warning("prompt cache: unreadable entry ignored")
        return None
    completion = entry.get("completion") if isinstance(entry, dict) else None
    if not isinstance(completion, dict) or not is_complete(completion):
        return None
    return completion


def _coalesced_hit(key: str, payload: str) -> CacheDecision:
    completion: dict[str, Any] = json.loads(payload)  # a private copy per waiter
    return CacheDecision("HIT", key, completion, coalesced=True, reason="coalesced")
