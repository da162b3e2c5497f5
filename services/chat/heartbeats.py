"""A stream's deltas with the moments it should show it is alive (heartbeats).

One task per stream reads the upstream a few deltas ahead; the consumer takes every delta
already there without a trip through the event loop, and waits (with the keep-alive timer)
only when there is none. A busy process thus renders the deltas that arrived together in
one go, and the SSE writer sends their frames as one message, instead of one task, one
`asyncio.wait` and one timer per delta.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from services.chat.providers.base import Delta

# Deltas read ahead of the consumer: past this the reader waits, so a client that stops
# reading still stops the upstream read.
READ_AHEAD = 16


class _ReadAhead:
    def __init__(self, deltas: AsyncIterator[Delta]) -> None:
        self.ready: deque[Delta] = deque()
        self.ended = False
        self.error: Exception | None = None
        self.arrived = asyncio.Event()  # a delta, the end, or another reason to look
        self._room = asyncio.Event()
        self._room.set()
        self.task = asyncio.create_task(self._read(deltas), name="stream-read-ahead")

    def take(self) -> Delta:
        self._room.set()
        return self.ready.popleft()

    async def _read(self, deltas: AsyncIterator[Delta]) -> None:
        try:
            async for delta in deltas:
                self.ready.append(delta)
                self.arrived.set()
                if len(self.ready) >= READ_AHEAD:
                    self._room.clear()
                    await self._room.wait()
        except Exception as exc:  # the consumer raises it, as if it had read it itself
            self.error = exc
        except BaseException:  # cancelled: the answer is incomplete, never a clean end
            self.error = RuntimeError("the upstream read stopped before the answer's end")
            raise
        finally:
            self.ended = True
            self.arrived.set()


async def with_heartbeats(
    deltas: AsyncIterator[Delta], accepted: asyncio.Event, interval_s: float
) -> AsyncGenerator[Delta | None, None]:
    """`deltas`, with a None when `accepted` is first set and after each `interval_s`
    without a delta: the moments a stream should show it is alive.

    Close it (`aclosing`) before closing `deltas`: its reader task is iterating them."""
    feed = _ReadAhead(deltas)
    accept: asyncio.Future[Any] = asyncio.ensure_future(accepted.wait())
    accept.add_done_callback(lambda _: feed.arrived.set())
    told_accepted = yielded = False
    try:
        while True:
            while feed.ready:
                yielded = True
                yield feed.take()
            if feed.ended:
                if feed.error is not None:
                    raise feed.error
                return
            if not told_accepted and accept.done():
                told_accepted = True
                if not yielded:  # headers went out with the first delta already
                    yield None
                continue
            feed.arrived.clear()
            try:
                async with asyncio.timeout(interval_s):
                    await feed.arrived.wait()
            except TimeoutError:
                yield None
    finally:
        for task in (feed.task, accept):
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
