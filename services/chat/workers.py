"""Worker pool: admission per worker, load spreading, and passive outlier ejection.

Several workers (base URLs, possibly of several providers) may serve one model.

- Admission (overload protection): a worker runs at most `concurrency` requests at once
  (its provider's `maxConcurrency`, else `chat.workerConcurrency`, like ollama's
  OLLAMA_NUM_PARALLEL). Further requests wait in a bounded FIFO queue for a bounded time;
  a full queue or an expired wait is a 429 `upstream_queue_full` with Retry-After at once
  (a 503 `upstream_unavailable` when that worker is also ejected).
  Without this, every request is forwarded and waits in the worker's own invisible queue:
  300 open streams made each new request wait 7-16 s behind them (issue 13, defect 2).
  With several chat processes (`chat.processes`) each one admits only its share of the
  slots, of the queue and of the batch slots (`process_share`), so together they never
  exceed the limit.
- Background work (batch lines) has the lowest priority: it takes a slot only when no
  interactive request waits, holds at most `batch_concurrency` of a worker's slots, and
  waits in its own unbounded queue (the batch runner bounds how many lines it starts).
- Picking: not yet tried, not ejected, a free slot, then the shortest queue, then least
  recently used.
- Ejection: a connection failure ejects a worker at once; `eject_after` failures in a row
  (timeouts, garbage, cut answers) eject it too. An ejection lasts `eject_base_s`, doubling
  with each ejection in a row up to `eject_max_s`; an answer that starts resets it. If
  every worker is ejected, one is tried anyway (it may be back).

`snapshot()` is what health and metrics read (see its docstring for the fields).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from clawgate.common.config import ChatSettings
from clawgate.common.errors import ApiError
from services.chat.providers.base import Target, public_url

QUEUE_RETRY_AFTER_S = 2.0


@dataclass
class WorkerState:
    url: str
    provider: str
    concurrency: int  # this process's share of the worker's slots
    in_flight: int = 0
    queue_length: int = 512  # this process's share of the worker's queue
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    batch_limit: int = 1
    batch_in_flight: int = 0
    batch_waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    down_until: float = 0.0
    last_pick: int = 0
    last_error: str = ""
    failures_in_row: int = 0
    ejections_in_row: int = 0

    def is_down(self, now: float) -> bool:
        return self.down_until > now

    @property
    def queued(self) -> int:
        return len(self.waiters)

    @property
    def has_free_slot(self) -> bool:
        return self.in_flight < self.concurrency and not self.waiters

    @property
    def has_batch_slot(self) -> bool:
        return self.has_free_slot and self.batch_in_flight < self.batch_limit


class WorkerPool:
    def __init__(self, settings: ChatSettings | None = None) -> None:
        self._settings = settings or ChatSettings()
        self._workers: dict[str, WorkerState] = {}
        self._picks = itertools.count(1)

    def state(self, target: Target) -> WorkerState:
        worker = self._workers.get(target.key)
        if worker is None:
            settings = self._settings
            concurrency = self._share(
                target.provider.max_concurrency or settings.worker_concurrency
            )
            # At least one slot stays for interactive requests (unless there is only one).
            batch_limit = max(1, min(concurrency - 1, self._share(settings.batch_concurrency)))
            worker = self._workers[target.key] = WorkerState(
                target.worker, target.provider.id, concurrency, batch_limit=batch_limit,
                queue_length=self._share(settings.worker_queue_length, at_least=0),
            )  # fmt: skip
        return worker

    def _share(self, total: int, at_least: int = 1) -> int:
        settings = self._settings
        return process_share(total, settings.processes, settings.process_index, at_least)

    def pick(self, targets: Sequence[Target], avoid: AbstractSet[str] = frozenset()) -> Target:
        """The best target: not yet tried, not down, a free slot, shortest queue, LRU."""
        now = time.monotonic()

        def rank(target: Target) -> tuple[bool, bool, bool, int, int, int]:
            state = self.state(target)
            return (
                target.key in avoid,
                state.is_down(now),
                not state.has_free_slot,
                state.queued,
                state.in_flight,
                state.last_pick,
            )

        chosen = min(targets, key=rank)
        self.state(chosen).last_pick = next(self._picks)
        return chosen

    def untried_alive(self, targets: Sequence[Target], tried: AbstractSet[str]) -> bool:
        """Whether failing over (without waiting) could reach another live worker."""
        now = time.monotonic()
        return any(t.key not in tried and not self.state(t).is_down(now) for t in targets)

    @asynccontextmanager
    async def slot(
        self, target: Target, *, max_wait_s: float | None = None, background: bool = False
    ) -> AsyncIterator[None]:
        """Hold one of the worker's slots, waiting in its bounded queue if need be.

        Raises ApiError 429 `upstream_queue_full` (Retry-After) when the queue is full or
        the wait (bounded by `max_wait_s`, e.g. what is left of the request's deadline)
        ends first.
        """
        state = self.state(target)
        if background:
            async with self._batch_slot(state, max_wait_s):
                yield
            return
        if not state.has_free_slot:
            await self._wait_for_slot(state, max_wait_s)
        else:
            state.in_flight += 1
        try:
            yield
        finally:
            state.in_flight -= 1
            self._hand_over(state)

    @asynccontextmanager
    async def _batch_slot(
        self, state: WorkerState, max_wait_s: float | None
    ) -> AsyncIterator[None]:
        """A slot for background work: only when no interactive request waits."""
        if not state.has_batch_slot or state.batch_waiters:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            state.batch_waiters.append(waiter)
            try:
                async with asyncio.timeout(None if max_wait_s is None else max(max_wait_s, 0.0)):
                    await waiter  # counted in by _hand_over before waking us
            except TimeoutError:
                if not (waiter.done() and not waiter.cancelled()):
                    raise _queue_full(state, "no spare slot for batch work in time") from None
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._release(state, background=True)
                raise
            finally:
                if waiter in state.batch_waiters:
                    state.batch_waiters.remove(waiter)
        else:
            state.in_flight += 1
            state.batch_in_flight += 1
        try:
            yield
        finally:
            self._release(state, background=True)

    async def _wait_for_slot(self, state: WorkerState, max_wait_s: float | None) -> None:
        settings = self._settings
        now = time.monotonic()
        if state.is_down(now):
            # Every worker is out of rotation (else another would have been picked): do not
            # queue behind one that keeps failing.
            raise ApiError(
                503,
                f"the model server at {public_url(state.url)} is out of rotation after "
                f"repeated failures ({state.last_error}) and is at capacity; retry later.",
                code="upstream_unavailable",
                retry_after=max(1.0, round(state.down_until - now)),
            )
        if state.queued >= state.queue_length:
            raise _queue_full(state, f"its queue is full ({state.queued} waiting)")
        wait_s = settings.worker_queue_wait_s
        if max_wait_s is not None:
            wait_s = min(wait_s, max_wait_s)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiters.append(waiter)
        try:
            async with asyncio.timeout(max(wait_s, 0.0)):
                await waiter  # the releasing request counted us in before waking us
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # handed a slot just as the wait ran out: use it
            raise _queue_full(state, f"no free slot within {wait_s:g}s") from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release(state)  # handed a slot we will not use: pass it on
            raise
        finally:
            if waiter in state.waiters:
                state.waiters.remove(waiter)

    def _release(self, state: WorkerState, *, background: bool = False) -> None:
        state.in_flight -= 1
        if background:
            state.batch_in_flight -= 1
        self._hand_over(state)

    def _hand_over(self, state: WorkerState) -> None:
        while state.waiters and state.in_flight < state.concurrency:
            waiter = state.waiters.popleft()
            if not waiter.done():
                state.in_flight += 1
                waiter.set_result(None)
        # Interactive requests first: batch work only gets what nobody waits for.
        while state.batch_waiters and state.has_batch_slot:
            waiter = state.batch_waiters.popleft()
            if not waiter.done():
                state.in_flight += 1
                state.batch_in_flight += 1
                waiter.set_result(None)

    # -- outcomes ----------------------------------------------------------------------
    def mark_down(self, target: Target, reason: str) -> None:
        """Eject at once (the worker cannot be reached)."""
        self._eject(self.state(target), reason)

    def record_failure(self, target: Target, reason: str) -> None:
        """A timeout, bad response or cut answer; ejects after enough in a row."""
        state = self.state(target)
        state.failures_in_row += 1
        state.last_error = reason
        if state.failures_in_row >= max(1, self._settings.eject_after_failures):
            self._eject(state, reason)

    def mark_up(self, target: Target) -> None:
        """An answer started: the worker is healthy again."""
        state = self.state(target)
        state.down_until = 0.0
        state.last_error = ""
        state.failures_in_row = 0
        state.ejections_in_row = 0

    def _eject(self, state: WorkerState, reason: str) -> None:
        settings = self._settings
        backoff = min(settings.eject_base_s * 2.0**state.ejections_in_row, settings.eject_max_s)
        state.down_until = time.monotonic() + backoff
        state.ejections_in_row += 1
        state.failures_in_row = 0
        state.last_error = reason

    # -- observability -----------------------------------------------------------------
    def in_flight(self) -> dict[str, int]:
        """In-flight requests per worker URL (summed over providers sharing a URL)."""
        totals: dict[str, int] = {}
        for state in self._workers.values():
            totals[state.url] = totals.get(state.url, 0) + state.in_flight
        return totals

    def snapshot(self) -> list[dict[str, Any]]:
        """One entry per (provider, worker) seen so far, for health and metrics:
        `url` (credentials removed), `provider`, `concurrency`, `in_flight`, `queued`,
        `batch_in_flight`, `batch_queued` (background work), `down` (ejected now),
        `down_for_s` (seconds left), `failures_in_row`, `ejections_in_row`, `last_error`."""
        now = time.monotonic()
        return [
            {
                "url": public_url(s.url),
                "provider": s.provider,
                "concurrency": s.concurrency,
                "in_flight": s.in_flight,
                "queued": s.queued,
                "batch_in_flight": s.batch_in_flight,
                "batch_queued": len(s.batch_waiters),
                "down": s.is_down(now),
                "down_for_s": round(max(0.0, s.down_until - now), 3),
                "failures_in_row": s.failures_in_row,
                "ejections_in_row": s.ejections_in_row,
                "last_error": s.last_error,
            }
            for s in self._workers.values()
        ]


def process_share(total: int, processes: int, index: int, at_least: int = 1) -> int:
    """Process `index`'s share of a gateway-wide limit split among `processes` chat
    processes: `total // processes`, one more for the first `total % processes` of them, so
    the shares add up to `total` exactly. Slots keep `at_least` 1 per process (it could not
    serve at all with none), so when `total < processes` the gateway as a whole may run
    `processes` at once: the launcher warns about that. A queue may be 0 (no queue)."""
    base, extra = divmod(max(at_least, total), max(1, processes))
    return max(at_least, base + (1 if index < extra else 0))


def _queue_full(state: WorkerState, why: str) -> ApiError:
    return ApiError(
        429,
        f"the model server at {public_url(state.url)} is at capacity ({state.in_flight} "
        f"running, {why}). Retry after the Retry-After delay, or add workers.",
        code="upstream_queue_full",
        retry_after=QUEUE_RETRY_AFTER_S,
    )
