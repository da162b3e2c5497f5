"""How late this process's event loop runs what is due: the lag a busy loop adds to every wait.

A deadline measured on the event loop includes the time the loop spent on other work. A
50 ms Redis deadline in a process serving 64 requests at once can expire while Redis's
answer sits unread in the socket. `LoopLag` lets such deadlines tell the two apart: a
ticker sleeps a short interval and records how late it woke up; `recent()` is the worst
lag of the last second.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

TICK_S = 0.05
WINDOW = 20  # ticks: one second of history


class LoopLag:
    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=WINDOW)
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        """Start the ticker on the running loop (idempotent; cheap: 20 wake-ups a second)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(TICK_S)
            self._samples.append(max(0.0, loop.time() - before - TICK_S))

    def recent(self) -> float:
        """The worst lag (seconds) seen in the last second."""
        return max(self._samples, default=0.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
