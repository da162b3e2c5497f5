"""SSE frames to gRPC messages: whatever frames wait when the previous write completes go
out as ONE HttpBody message, so a busy process sends fewer, larger messages.

One writer task per stream does the writing; the producer (the stream renderer) only
appends frames and goes on reading the upstream while a write is in flight. A frame is
never held back to wait for another: an idle writer writes it at once. The buffer is
bounded (`limit` bytes): past it the producer waits, so a client that stops reading still
stops the upstream read (an unread stream does not grow memory).

A failed write (the client is gone) ends the stream: the producer is cancelled at whatever
it awaits (the upstream read is closed at once) and the write's error is raised from the
`async with` block, as a direct `context.write` would have raised it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType

DEFAULT_LIMIT = 64 * 1024


class SseWriter:
    """`async with SseWriter(write) as out: await out.put(frame) ...`; leaving the block
    normally flushes every frame before it returns, leaving it by an error drops them."""

    def __init__(self, write: Callable[[bytes], Awaitable[None]], limit: int = DEFAULT_LIMIT):
        self._write = write
        self._limit = limit
        self._frames: list[bytes] = []
        self._size = 0
        self._wake = asyncio.Event()  # frames wait, or the block is closing
        self._room = asyncio.Event()  # the buffer is within its limit (or the writer failed)
        self._room.set()
        self._closing = False
        self._error: Exception | None = None
        self._owner_inside = False  # the producer awaits put()/flush(): no need to cancel it
        self._cancelled_owner = False
        self._owner: asyncio.Task[object] | None = None
        self._task: asyncio.Task[None] | None = None
        self.writes = 0  # messages written (tests and measurements)

    async def __aenter__(self) -> SseWriter:
        self._owner = asyncio.current_task()
        self._task = asyncio.create_task(self._run(), name="sse-writer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.flush()
            return
        await self._stop()
        # uncancel() whenever we cancelled the caller, to keep its count of requests right.
        owner = self._owner
        ours = self._cancelled_owner and owner is not None and owner.uncancel() == 0
        if ours and isinstance(exc, asyncio.CancelledError):
            # Our own cancellation (a write failed), not the caller's: raise why.
            assert self._error is not None
            raise self._error from None

    async def put(self, frame: bytes) -> None:
        """Queue one frame (written in order); waits while the buffer is over its limit."""
        self._raise_if_failed()
        self._frames.append(frame)
        self._size += len(frame)
        self._wake.set()
        if self._size > self._limit:
            self._room.clear()
            await self._inside(self._room.wait())
            self._raise_if_failed()

    async def flush(self) -> None:
        """Write everything queued and stop the writer (no put() after this)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._inside(self._task)  # cancelling the caller cancels the writer
        self._raise_if_failed()

    async def _inside(self, waiting: Awaitable[object]) -> None:
        self._owner_inside = True
        try:
            await waiting
        finally:
            self._owner_inside = False

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    async def _run(self) -> None:
        try:
            while self._frames or not self._closing:
                if not self._frames:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                frames, self._frames, self._size = self._frames, [], 0
                self._room.set()
                await self._write(frames[0] if len(frames) == 1 else b"".join(frames))
                self.writes += 1
        except Exception as exc:
            self._error = exc
            self._room.set()
            owner = self._owner
            if not self._owner_inside and owner is not None and not owner.done():
                self._cancelled_owner = True
                owner.cancel()  # stop the producer's upstream read now

    async def _stop(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
