"""with_heartbeats: the deltas in order, a None when the worker accepted and after each
keep-alive interval of silence, a bounded read-ahead, errors and closing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing

import pytest

from services.chat.heartbeats import READ_AHEAD, with_heartbeats
from services.chat.providers.base import Delta

LONG = 3600.0  # a keep-alive interval no test reaches


class Upstream:
    """Deltas on demand: `send(text)` releases one, `end()` finishes, `fail()` raises."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Delta | Exception | None] = asyncio.Queue()
        self.produced = 0
        self.closed = asyncio.Event()

    async def deltas(self) -> AsyncGenerator[Delta, None]:
        try:
            while (item := await self.queue.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                self.produced += 1
                yield item
        finally:
            self.closed.set()

    def send(self, text: str) -> None:
        self.queue.put_nowait(Delta(content=text))


async def test_deltas_in_order_with_one_none_when_accepted() -> None:
    upstream, accepted = Upstream(), asyncio.Event()
    async with aclosing(with_heartbeats(upstream.deltas(), accepted, LONG)) as beats:
        accepted.set()
        assert await anext(beats) is None  # accepted, no token yet: start the stream
        for text in ("a", "b", "c"):
            upstream.send(text)
        upstream.queue.put_nowait(None)
        rest = [d.content if d is not None else None async for d in beats]
    assert rest == ["a", "b", "c"]


async def test_no_none_for_an_acceptance_after_the_first_delta() -> None:
    upstream, accepted = Upstream(), asyncio.Event()
    async with aclosing(with_heartbeats(upstream.deltas(), accepted, LONG)) as beats:
        upstream.send("a")
        first = await anext(beats)
        assert first is not None and first.content == "a"
        accepted.set()
        upstream.send("b")
        upstream.queue.put_nowait(None)
        rest = [d.content if d is not None else None async for d in beats]
    assert rest == ["b"]


async def test_a_none_after_each_interval_of_silence() -> None:
    upstream, accepted = Upstream(), asyncio.Event()
    async with aclosing(with_heartbeats(upstream.deltas(), accepted, 0.01)) as beats:
        upstream.send("a")
        assert (await anext(beats)) == Delta(content="a")
        assert await anext(beats) is None  # the upstream is silent
        assert await anext(beats) is None  # and still is
        upstream.send("b")
        got = await anext(beats)
        while got is None:  # a heartbeat may have fired before "b" arrived
            got = await anext(beats)
        assert got.content == "b"


async def test_the_read_ahead_is_bounded() -> None:
    upstream, accepted = Upstream(), asyncio.Event()
    for i in range(READ_AHEAD * 4):
        upstream.send(str(i))
    async with (
        aclosing(upstream.deltas()) as deltas,  # as the stream renderer holds them
        aclosing(with_heartbeats(deltas, accepted, LONG)) as beats,
    ):
        assert (await anext(beats)) == Delta(content="0")
        for _ in range(50):  # let the reader run as far as it may
            await asyncio.sleep(0)
        # A consumer that stops reading stops the upstream read too.
        assert upstream.produced <= READ_AHEAD + 2
    assert upstream.closed.is_set()


async def test_an_upstream_error_comes_after_the_deltas_before_it() -> None:
    upstream, accepted = Upstream(), asyncio.Event()
    upstream.send("a")
    upstream.queue.put_nowait(ValueError("cut"))
    seen: list[str] = []
    with pytest.raises(ValueError, match="cut"):
        async with aclosing(with_heartbeats(upstream.deltas(), accepted, LONG)) as beats:
            async for delta in beats:
                assert delta is not None
                seen.append(delta.content)
    assert seen == ["a"]


async def test_closing_it_ends_the_upstream_read() -> None:
    upstream, accepted = Upstream(), asyncio.Event()
    upstream.send("a")
    async with aclosing(with_heartbeats(upstream.deltas(), accepted, LONG)) as beats:
        await anext(beats)  # the reader now waits on the upstream for more
    assert upstream.closed.is_set()
    assert all(t.get_name() != "stream-read-ahead" for t in asyncio.all_tasks())
