"""SseWriter: frames waiting behind a write in flight go out as one message; a lone frame
goes at once; the buffer is bounded; a failed write ends the stream and its producer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from services.chat.sse_writer import SseWriter


class ClientGone(Exception):
    pass


class Sink:
    """A `context.write` stand-in: records messages; `hold()` keeps the next writes in
    flight until `release()`; `fail()` makes the next write raise."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.started = 0  # writes begun (a held write has begun but not completed)
        self._gate = asyncio.Event()
        self._gate.set()
        self._error: Exception | None = None

    async def write(self, data: bytes) -> None:
        self.started += 1
        await self._gate.wait()
        if self._error is not None:
            raise self._error
        self.messages.append(data)

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def fail(self, error: Exception) -> None:
        self._error = error
        self._gate.set()


async def until(condition: Callable[[], bool]) -> None:
    """Run the loop until `condition` holds (every step here is a few loop iterations)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_an_idle_writer_writes_a_lone_frame_at_once() -> None:
    sink = Sink()
    async with SseWriter(sink.write) as out:
        await out.put(b"data: 1\n\n")
        await until(lambda: sink.messages == [b"data: 1\n\n"])
        await out.put(b"data: 2\n\n")
        await until(lambda: len(sink.messages) == 2)
    assert sink.messages == [b"data: 1\n\n", b"data: 2\n\n"]


async def test_frames_put_while_a_write_is_in_flight_go_out_as_one_message() -> None:
    sink = Sink()
    sink.hold()
    async with SseWriter(sink.write) as out:
        await out.put(b"a")
        await until(lambda: sink.started == 1)  # "a" is in flight
        for frame in (b"b", b"c", b"d"):
            await out.put(frame)  # returns at once: the producer goes on reading
        await settle()
        assert sink.started == 1  # nothing else is written while "a" is in flight
        sink.release()
        await until(lambda: len(sink.messages) == 2)
        await out.put(b"e")
    assert sink.messages == [b"a", b"bcd", b"e"]
    assert out.writes == 3


async def test_leaving_the_block_flushes_every_frame_in_order() -> None:
    sink = Sink()
    sink.hold()
    async with SseWriter(sink.write) as out:
        for i in range(5):
            await out.put(b"%d," % i)
        sink.release()
    assert b"".join(sink.messages) == b"0,1,2,3,4,"


async def test_the_producer_waits_while_the_buffer_is_over_its_limit() -> None:
    sink = Sink()
    sink.hold()
    async with SseWriter(sink.write, limit=10) as out:
        await out.put(b"x" * 4)
        await until(lambda: sink.started == 1)
        await out.put(b"y" * 6)  # 6 bytes waiting: within the limit
        blocked = asyncio.create_task(out.put(b"z" * 6))  # 12 bytes: over it
        await settle()
        assert not blocked.done()  # backpressure: a slow reader stops the producer
        sink.release()
        await blocked
    assert sink.messages == [b"xxxx", b"yyyyyyzzzzzz"]


async def test_a_failed_write_cancels_the_producer_and_raises_the_write_error() -> None:
    sink = Sink()
    sink.hold()
    upstream_closed = asyncio.Event()

    async def read_upstream() -> None:
        try:
            await asyncio.Event().wait()  # an upstream that sends nothing more
        except asyncio.CancelledError:
            upstream_closed.set()
            raise

    with pytest.raises(ClientGone):
        async with SseWriter(sink.write) as out:
            await out.put(b"a")
            await until(lambda: sink.started == 1)
            sink.fail(ClientGone())
            await read_upstream()
    assert upstream_closed.is_set()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # our cancel was taken back


async def test_a_producer_waiting_for_room_gets_the_write_error() -> None:
    sink = Sink()
    sink.hold()
    with pytest.raises(ClientGone):
        async with SseWriter(sink.write, limit=1) as out:
            await out.put(b"a")
            await until(lambda: sink.started == 1)
            blocked = asyncio.create_task(out.put(b"bb"))
            await settle()
            sink.fail(ClientGone())
            await blocked
    with pytest.raises(ClientGone):
        await out.put(b"c")  # nothing is accepted after a failed write


async def test_a_failed_final_flush_raises_the_write_error() -> None:
    sink = Sink()
    sink.hold()
    with pytest.raises(ClientGone):
        async with SseWriter(sink.write) as out:
            await out.put(b"a")
            await until(lambda: sink.started == 1)
            await out.put(b"data: [DONE]\n\n")
            asyncio.get_running_loop().call_soon(sink.fail, ClientGone())
    assert sink.messages == []


async def test_cancelling_the_call_stops_the_writer() -> None:
    sink = Sink()
    sink.hold()
    entered = asyncio.Event()
    writers: list[SseWriter] = []

    async def handler() -> None:
        async with SseWriter(sink.write) as out:
            writers.append(out)
            await out.put(b"a")
            entered.set()
            await asyncio.Event().wait()

    call = asyncio.create_task(handler())
    await entered.wait()
    await until(lambda: sink.started == 1)
    call.cancel()  # what grpc.aio does when the client goes away
    with pytest.raises(asyncio.CancelledError):
        await call
    assert all(t.get_name() != "sse-writer" for t in asyncio.all_tasks())
    assert writers[0].writes == 0


async def test_an_error_in_the_block_drops_what_waits_and_stops_the_writer() -> None:
    sink = Sink()
    sink.hold()
    with pytest.raises(RuntimeError, match="renderer failed"):
        async with SseWriter(sink.write) as out:
            await out.put(b"a")
            await until(lambda: sink.started == 1)
            await out.put(b"b")
            raise RuntimeError("renderer failed")
    sink.release()
    await settle()
    assert all(t.get_name() != "sse-writer" for t in asyncio.all_tasks())
    assert sink.messages == []
