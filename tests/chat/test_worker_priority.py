"""Background (batch) work in the worker queues: it only takes slots nobody waits for."""

from __future__ import annotations

import asyncio
import dataclasses

from clawgate.common.config import ChatSettings
from services.chat.workers import WorkerPool
from tests.chat.test_workers import W1, until

SETTINGS = ChatSettings(worker_concurrency=3, worker_queue_length=8, batch_concurrency=2)


async def hold(
    pool: WorkerPool, release: asyncio.Event, order: list[str], name: str, background: bool
) -> None:
    async with pool.slot(W1, background=background):
        order.append(name)
        await release.wait()


async def test_batch_work_holds_at_most_its_share_and_never_the_last_slot() -> None:
    pool = WorkerPool(dataclasses.replace(SETTINGS, batch_concurrency=5))
    release, order = asyncio.Event(), list[str]()
    batch = [asyncio.create_task(hold(pool, release, order, f"b{i}", True)) for i in range(4)]
    await until(lambda: len(pool.state(W1).batch_waiters) == 2)
    state = pool.state(W1)
    assert (state.in_flight, state.batch_in_flight) == (2, 2)  # one slot stays interactive
    interactive = asyncio.create_task(hold(pool, release, order, "i", False))
    await until(lambda: "i" in order)  # got the free slot at once
    release.set()
    await asyncio.gather(*batch, interactive)
    assert (state.in_flight, state.batch_in_flight, state.queued) == (0, 0, 0)


async def test_a_freed_slot_goes_to_a_waiting_interactive_request_first() -> None:
    pool = WorkerPool(SETTINGS)
    first, order = asyncio.Event(), list[str]()
    running = [asyncio.create_task(hold(pool, first, order, f"i{i}", False)) for i in range(3)]
    await until(lambda: len(order) == 3)
    rest = asyncio.Event()
    batch = asyncio.create_task(hold(pool, rest, order, "batch", True))
    await until(lambda: len(pool.state(W1).batch_waiters) == 1)
    late = asyncio.create_task(hold(pool, rest, order, "late", False))  # queued after batch
    await until(lambda: pool.state(W1).queued == 1)
    first.set()
    await asyncio.gather(*running)
    await until(lambda: len(order) == 5)
    assert order[3:] == ["late", "batch"]
    rest.set()
    await asyncio.gather(batch, late)


async def test_a_cancelled_batch_waiter_leaves_nothing_behind() -> None:
    pool = WorkerPool(dataclasses.replace(SETTINGS, worker_concurrency=1))
    release, order = asyncio.Event(), list[str]()
    holder = asyncio.create_task(hold(pool, release, order, "i", False))
    await until(lambda: order == ["i"])
    waiter = asyncio.create_task(hold(pool, release, order, "b", True))
    await until(lambda: len(pool.state(W1).batch_waiters) == 1)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    release.set()
    await holder
    state = pool.state(W1)
    assert (state.in_flight, state.batch_in_flight, len(state.batch_waiters)) == (0, 0, 0)
