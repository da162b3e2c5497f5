"""Wake-ups for requests waiting on another chat process's in-flight answer.

A leader that finishes publishes the entry key on one channel per deployment; each chat
process keeps one subscription and sets the events of its local waiters. Messages can be
lost (Redis restarting, subscription not yet confirmed), so waiters also poll: a message
only makes the wait shorter, it is never needed for correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("clawgate.chat.cache")

# Longest read on the subscription before checking again (cancellation and close()).
_READ_TIMEOUT_S = 1.0
# Pause between resubscribe attempts while Redis is unreachable.
_RETRY_MIN_S = 0.1
_RETRY_MAX_S = 2.0


class FlightNotifier:
    """One pub/sub subscription per process, fanned out to per-key events."""

    def __init__(self, redis: aioredis.Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._events: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = False

    @property
    def subscribed(self) -> bool:
        """Whether Redis has confirmed the subscription (messages will arrive)."""
        return self._subscribed

    def start(self) -> None:
        """Subscribe in the background (idempotent); waiters poll until it is confirmed."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="prompt-cache-notify")

    @contextlib.contextmanager
    def watch(self, key: str) -> Iterator[asyncio.Event]:
        """An event set whenever `key`'s leader publishes; unregistered on exit."""
        event = asyncio.Event()
        self._events.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            waiting = self._events.get(key)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._events[key]

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._subscribed = False

    def _dispatch(self, data: bytes | str) -> None:
        key = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        for event in self._events.get(key, ()):
            event.set()

    async def _run(self) -> None:
        delay = _RETRY_MIN_S
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=_READ_TIMEOUT_S)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._subscribed = True
                        delay = _RETRY_MIN_S
                    elif message["type"] == "message":
                        self._dispatch(message["data"])
            except (RedisError, OSError) as exc:
                # The cache logs Redis outages (rate-limited); here only debug detail.
                log.debug("prompt cache subscription lost: %s", type(exc).__name__)
            except Exception:
                # Never let the listener die: waiters would only poll more slowly, but
                # the cause belongs in the log.
                log.exception("prompt cache subscription failed; resubscribing")
            finally:
                self._subscribed = False
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_S)
