"""The Redis store on its own: the Lua scripts' atomic checks, retried writes, and paging
through agents created in the same millisecond."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from clawgate.agents.v1 import agent_service_pb2 as pb
from services.agents.pagination import Cursor
from services.agents.records import AgentRecord
from services.agents.store import AgentStore, IdempotencyClaim, Outcome, connect
from tests.agents.conftest import unique_name


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[AgentStore]:
    agents = AgentStore(connect(redis_url), unique_name("store"))
    yield agents
    await agents.close()


def record(name: str, at_ms: int = 1_700_000_000_000) -> AgentRecord:
    return AgentRecord.create(pb.Agent(name=name, model="qwen3:32b"), at_ms, owner="admin")


async def test_two_revisions_of_one_read_cannot_both_land(store: AgentStore) -> None:
    current = record(unique_name())
    assert (await store.create(current, None)).outcome is Outcome.OK
    first = current.revise(pb.Agent(name=current.name, model="a"), 1)
    second = current.revise(pb.Agent(name=current.name, model="b"), 1)
    outcomes = await asyncio.gather(
        store.replace(first, current.etag), store.replace(second, current.etag)
    )
    assert sorted(o.value for o in outcomes) == ["etag_mismatch", "ok"]
    stored = await store.get(current.id)
    assert stored in (first, second)


async def test_a_retried_update_that_already_landed_reports_success(store: AgentStore) -> None:
    current = record(unique_name())
    await store.create(current, None)
    revised = current.revise(pb.Agent(name=current.name, model="x"), 2)
    assert await store.replace(revised, current.etag) is Outcome.OK
    assert await store.replace(revised, current.etag) is Outcome.OK
    later = revised.revise(pb.Agent(name=current.name, model="y"), 3)
    assert await store.replace(later, current.etag) is Outcome.ETAG_MISMATCH
    assert await store.get(current.id) == revised


async def test_a_retried_create_is_not_a_name_conflict_with_itself(store: AgentStore) -> None:
    created = record(unique_name())
    assert (await store.create(created, None)).outcome is Outcome.OK
    assert (await store.create(created, None)).outcome is Outcome.OK
    other = record(created.name)
    assert (await store.create(other, None)).outcome is Outcome.NAME_TAKEN
    assert (await store.page(None, 10)).total == 1


async def test_racing_renames_onto_one_name_leave_one_owner(store: AgentStore) -> None:
    a, b = record(unique_name()), record(unique_name())
    await store.create(a, None)
    await store.create(b, None)
    target = unique_name()
    outcomes = await asyncio.gather(
        store.replace(a.revise(pb.Agent(name=target, model=a.model), 5), a.etag),
        store.replace(b.revise(pb.Agent(name=target, model=b.model), 5), b.etag),
    )
    assert sorted(o.value for o in outcomes) == ["name_taken", "ok"]
    owner = await store.get(target)
    assert owner is not None and owner.id in (a.id, b.id)
    loser = b if owner.id == a.id else a
    assert await store.get(loser.name) == loser


async def test_delete_checks_the_etag_and_cleans_every_index(store: AgentStore) -> None:
    created = record(unique_name())
    await store.create(created, None)
    assert await store.delete(created, "stale") is Outcome.ETAG_MISMATCH
    assert await store.delete(created, created.etag) is Outcome.OK
    assert await store.delete(created, None) is Outcome.NOT_FOUND
    assert await store.get(created.name) is None
    assert (await store.page(None, 10)).total == 0


async def test_idempotency_record_replays_the_first_create(store: AgentStore) -> None:
    claim = IdempotencyClaim(unique_name("key"), "fp-1")
    first = record(unique_name())
    assert (await store.create(first, claim)).record == first
    retry = record(first.name)  # a new id, as a retried request would make
    replay = await store.create(retry, IdempotencyClaim(claim.key, "fp-1"))
    assert replay.record == first
    assert replay.replayed_fingerprint == "fp-1"
    assert (await store.page(None, 10)).total == 1


async def test_paging_through_agents_created_in_one_millisecond(store: AgentStore) -> None:
    same_ms = [record(f"tie-{i}", at_ms=1_700_000_000_500) for i in range(10)]
    before, after = record("early", 1_700_000_000_000), record("late", 1_700_000_000_900)
    for r in [*same_ms, before, after]:
        await store.create(r, None)
    expected = [before.id, *sorted(r.id for r in same_ms), after.id]
    seen: list[str] = []
    cursor: Cursor | None = None
    while True:
        page = await store.page(cursor, 3)
        assert page.total == 12
        seen.extend(r.id for r in page.records)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected


async def test_documents_are_plain_json_with_raw_utf8(store: AgentStore, redis_url: str) -> None:
    created = record("助手-" + unique_name())
    await store.create(created, None)
    text = str(await store._redis.get(f"{store._ns}:agent:{created.id}"))
    assert "助手" in text
    assert json.loads(text)["etag"] == created.etag
