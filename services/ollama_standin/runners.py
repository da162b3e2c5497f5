"""Loaded models (what /api/ps shows) and per-model concurrency (OLLAMA_NUM_PARALLEL).

A request for a busy model waits without any response bytes and without a server-side
timeout, exactly as with ollama's runner semaphore; only the client can end the wait.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

FOREVER_S = float(2**63 - 1) / 1e9  # ollama's expiry for a negative keep_alive


@dataclass
class LoadedModel:
    name: str  # the pulled model's name
    context_length: int
    expires_at: float
    in_flight: int = 0
    pinned: bool = False  # preloaded: stays loaded unless a request sets keep_alive


class Runners:
    def __init__(self) -> None:
        self._loaded: dict[str, LoadedModel] = {}
        self._active: defaultdict[str, int] = defaultdict(int)
        self._waiters: defaultdict[str, deque[asyncio.Future[None]]] = defaultdict(deque)

    # -- concurrency -----------------------------------------------------------------

    async def acquire(self, key: str, limit: Callable[[], int]) -> None:
        while self._active[key] >= limit():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters[key].append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters[key]:
                    self._waiters[key].remove(waiter)
        self._active[key] += 1

    def release(self, key: str) -> None:
        self._active[key] = max(0, self._active[key] - 1)
        self.wake(key)

    def wake(self, key: str | None = None) -> None:
        """Let waiters re-check their limit (after a release or a num_parallel change)."""
        keys = [key] if key is not None else list(self._waiters)
        for k in keys:
            for waiter in self._waiters[k]:
                if not waiter.done():
                    waiter.set_result(None)

    # -- loaded models ---------------------------------------------------------------

    def current(self, key: str, now: float | None = None) -> LoadedModel | None:
        model = self._loaded.get(key)
        now = time.time() if now is None else now
        if model is not None and model.in_flight == 0 and model.expires_at <= now:
            del self._loaded[key]  # the keep-alive timer has fired
            return None
        return model

    def load(
        self, key: str, name: str, context_length: int, keep_alive_s: float, *, pinned: bool = False
    ) -> LoadedModel:
        previous = self._loaded.get(key)
        model = LoadedModel(
            name=name,
            context_length=context_length,
            expires_at=time.time() + (FOREVER_S if pinned or keep_alive_s < 0 else keep_alive_s),
            in_flight=previous.in_flight if previous else 0,
            pinned=pinned,
        )
        self._loaded[key] = model
        return model

    def begin(self, key: str) -> None:
        model = self._loaded.get(key)
        if model is not None:
            model.in_flight += 1

    def end(self, key: str, keep_alive_s: float | None, default_keep_alive_s: float) -> None:
        """The last in-flight request sets expires_at = now + keep_alive (0 unloads)."""
        model = self._loaded.get(key)
        if model is None:
            return
        model.in_flight = max(0, model.in_flight - 1)
        if model.in_flight:
            return
        if model.pinned and keep_alive_s is None:
            return
        keep = default_keep_alive_s if keep_alive_s is None else keep_alive_s
        if keep < 0:
            keep = FOREVER_S
        if keep == 0:
            del self._loaded[key]
            return
        model.pinned = False
        model.expires_at = time.time() + keep

    def unload(self, key: str) -> None:
        self._loaded.pop(key, None)

    def snapshot(self) -> list[tuple[str, LoadedModel]]:
        now = time.time()
        alive = [(k, m) for k in list(self._loaded) if (m := self.current(k, now)) is not None]
        return sorted(alive, key=lambda item: item[1].expires_at, reverse=True)

    def clear(self) -> None:
        self._loaded.clear()
