"""WorkerPool: admission (slots and the bounded queue), ejection with growing backoff, and
the snapshot health and metrics read."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from clawgate.common.config import ChatSettings, ModelSpec, ProviderSpec
from clawgate.common.errors import ApiError
from services.chat.providers.base import Target
from services.chat.workers import WorkerPool, process_share

SETTINGS = ChatSettings(
    worker_concurrency=2,
    worker_queue_length=2,
    worker_queue_wait_s=5.0,
    eject_after_failures=2,
    eject_base_s=5.0,
    eject_max_s=12.0,
)
PROVIDER = ProviderSpec("p", "openai-completions", ("http://user:secret@w1/v1", "http://w2/v1"))
MODEL = ModelSpec("m", "m")
W1, W2 = (Target(PROVIDER, MODEL, w) for w in PROVIDER.workers)


async def hold(pool: WorkerPool, target: Target, release: asyncio.Event) -> None:
    async with pool.slot(target):
        await release.wait()


async def until(condition: object) -> None:
    for _ in range(1000):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never met")


async def test_requests_beyond_slots_and_queue_get_a_429_at_once() -> None:
    pool = WorkerPool(SETTINGS)
    release = asyncio.Event()
    holders = [asyncio.create_task(hold(pool, W1, release)) for _ in range(4)]
    await until(lambda: pool.state(W1).queued == 2)
    assert pool.state(W1).in_flight == 2
    with pytest.raises(ApiError) as caught:
        async with pool.slot(W1):
            pass
    assert caught.value.status == 429 and caught.value.code == "upstream_queue_full"
    assert caught.value.retry_after and "secret" not in caught.value.message
    release.set()
    await asyncio.gather(*holders)  # the queued ones got their turn
    assert (pool.state(W1).in_flight, pool.state(W1).queued) == (0, 0)


async def test_a_queue_wait_is_bounded_by_the_callers_deadline() -> None:
    pool = WorkerPool(SETTINGS)
    release = asyncio.Event()
    holders = [asyncio.create_task(hold(pool, W1, release)) for _ in range(2)]
    await until(lambda: pool.state(W1).in_flight == 2)
    with pytest.raises(ApiError) as caught:
        async with pool.slot(W1, max_wait_s=0.05):
            pass
    assert caught.value.code == "upstream_queue_full" and pool.state(W1).queued == 0
    release.set()
    await asyncio.gather(*holders)


async def test_a_cancelled_waiter_passes_its_slot_on() -> None:
    pool = WorkerPool(dataclasses.replace(SETTINGS, worker_concurrency=1))
    release = asyncio.Event()
    first = asyncio.create_task(hold(pool, W1, release))
    await until(lambda: pool.state(W1).in_flight == 1)
    quitter = asyncio.create_task(hold(pool, W1, asyncio.Event()))
    stayer = asyncio.create_task(hold(pool, W1, release))
    await until(lambda: pool.state(W1).queued == 2)
    quitter.cancel()
    release.set()
    await asyncio.wait_for(asyncio.gather(first, stayer), 5)
    assert pool.state(W1).in_flight == 0


async def test_a_full_worker_that_is_ejected_is_a_503_not_a_wait() -> None:
    pool = WorkerPool(SETTINGS)
    release = asyncio.Event()
    holders = [asyncio.create_task(hold(pool, W1, release)) for _ in range(2)]
    await until(lambda: pool.state(W1).in_flight == 2)
    pool.mark_down(W1, "connection refused")
    with pytest.raises(ApiError) as caught:
        async with pool.slot(W1):
            pass
    assert caught.value.status == 503 and caught.value.code == "upstream_unavailable"
    assert caught.value.retry_after and caught.value.retry_after >= 1
    release.set()
    await asyncio.gather(*holders)


def test_picking_prefers_a_free_slot_then_the_shortest_queue() -> None:
    pool = WorkerPool(SETTINGS)
    pool.state(W1).in_flight = 2
    assert pool.pick([W1, W2]) == W2
    pool.state(W2).in_flight = 2
    pool.state(W2).waiters.extend([asyncio.Future(), asyncio.Future()])  # type: ignore[arg-type]
    assert pool.pick([W1, W2]) == W1


def test_failures_in_a_row_eject_with_a_growing_backoff() -> None:
    pool = WorkerPool(SETTINGS)
    pool.record_failure(W1, "no first token")
    assert not pool.snapshot()[0]["down"]
    pool.record_failure(W1, "no first token")
    first = pool.snapshot()[0]
    assert first["down"] and 4 < first["down_for_s"] <= 5
    assert pool.pick([W1, W2]) == W2
    for _ in range(2):
        pool.record_failure(W1, "no first token")
    assert 9 < pool.snapshot()[0]["down_for_s"] <= 10  # doubled
    for _ in range(2):
        pool.record_failure(W1, "no first token")
    assert pool.snapshot()[0]["down_for_s"] <= 12  # capped at eject_max_s
    pool.mark_up(W1)
    entry = pool.snapshot()[0]
    assert not entry["down"] and entry["ejections_in_row"] == 0
    assert entry["url"] == "http://w1/v1"  # credentials never shown
    assert set(entry) >= {"provider", "concurrency", "in_flight", "queued", "last_error"}


@pytest.mark.parametrize(
    ("total", "processes", "shares"),
    [
        (4, 1, [4]),
        (4, 2, [2, 2]),
        (5, 2, [3, 2]),  # the remainder goes to the first processes: the sum stays 5
        (7, 4, [2, 2, 2, 1]),
        (512, 3, [171, 171, 170]),
        (1, 2, [1, 1]),  # at least one each (the launcher warns: 2 may run at once)
    ],
)
def test_shared_limits_are_split_among_chat_processes(
    total: int, processes: int, shares: list[int]
) -> None:
    assert [process_share(total, processes, i) for i in range(processes)] == shares
    # A queue may be empty: `workerQueueLength: 0` stays 0 in every process.
    assert process_share(0, processes, 0, at_least=0) == 0
    assert sum(process_share(total, processes, i, at_least=0) for i in range(processes)) == total


async def test_each_chat_process_admits_only_its_share_of_slots_and_queue() -> None:
    settings = dataclasses.replace(
        SETTINGS, worker_concurrency=5, worker_queue_length=3, processes=2, process_index=1
    )
    pool = WorkerPool(settings)
    state = pool.state(W1)
    assert (state.concurrency, state.queue_length) == (2, 1)  # 5 → 3 + 2, 3 → 2 + 1
    release = asyncio.Event()
    holders = [asyncio.create_task(hold(pool, W1, release)) for _ in range(3)]
    await until(lambda: state.in_flight == 2 and state.queued == 1)
    with pytest.raises(ApiError) as caught:
        async with pool.slot(W1):
            pass
    assert caught.value.code == "upstream_queue_full"
    assert pool.snapshot()[0]["concurrency"] == 2
    release.set()
    await asyncio.gather(*holders)
    # A provider's own maxConcurrency is split the same way.
    own = dataclasses.replace(PROVIDER, max_concurrency=3)
    first = WorkerPool(dataclasses.replace(settings, process_index=0))
    assert first.state(Target(own, MODEL, own.workers[0])).concurrency == 2
    # So is the share of slots batch work may hold (10 → 5 + 5 slots, 4 → 2 + 2 for batches).
    batch = dataclasses.replace(settings, worker_concurrency=10, batch_concurrency=4)
    assert WorkerPool(batch).state(W1).batch_limit == 2
