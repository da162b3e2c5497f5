"""The session store on a real Redis: atomic appends under concurrency, order, deletes,
and a retryable 503 (never a 500) when Redis is gone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from clawgate.common.errors import ApiError
from clawgate.common.redis_store import connect
from services.sessions.store import SessionStore
from tests.conftest import PrivateRedis

OWNER = "alice"


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[SessionStore]:
    sessions = SessionStore(connect(redis_url), f"sessions-{uuid.uuid4().hex[:8]}")
    yield sessions
    await sessions.close()


async def test_concurrent_appends_never_pass_the_limit_and_keep_their_order(
    store: SessionStore,
) -> None:
    async def append(i: int) -> bool:
        messages = [{"role": "user", "content": f"{i}-a"}, {"role": "user", "content": f"{i}-b"}]
        return (await store.append(OWNER, "busy", messages, 1000 + i, limit=10)).ok

    results = await asyncio.gather(*(append(i) for i in range(20)))
    assert results.count(True) == 5  # 5 appends of 2 fill the 10 places; the rest refused
    found = await store.get(OWNER, "busy")
    assert found is not None
    info, docs = found
    assert info.message_count == 10
    contents = [d["content"] for d in docs]
    for i in {c.split("-")[0] for c in contents}:
        assert contents.index(f"{i}-b") == contents.index(f"{i}-a") + 1  # never interleaved


async def test_delete_removes_the_session_from_the_list(store: SessionStore) -> None:
    for name in ("b", "a", "c"):
        await store.append(OWNER, name, [{"role": "user", "content": name}], 1, limit=5)
    assert [s.id for s in (await store.page(OWNER, None, 10)).sessions] == ["a", "b", "c"]
    assert await store.delete(OWNER, "b")
    assert not await store.delete(OWNER, "b")
    page = await store.page(OWNER, None, 1)
    assert [s.id for s in page.sessions] == ["a"] and page.last_id == "a" and page.total == 2
    rest = await store.page(OWNER, page.last_id, 1)
    assert [s.id for s in rest.sessions] == ["c"] and rest.last_id is None
    assert await store.get(OWNER, "b") is None


async def test_redis_down_is_a_retryable_503(private_redis: PrivateRedis) -> None:
    store = SessionStore(connect(private_redis.url), "down")
    try:
        await store.append(OWNER, "s", [{"role": "user", "content": "x"}], 1, limit=5)
        await asyncio.to_thread(private_redis.stop)
        with pytest.raises(ApiError) as caught:
            await store.get(OWNER, "s")
        assert caught.value.status == 503 and caught.value.code == "store_unavailable"
        assert caught.value.retryable and "session store unavailable" in caught.value.message
    finally:
        await store.close()


async def test_append_reports_the_first_append_time(store: SessionStore) -> None:
    first = await store.append(OWNER, "t", [{"role": "user", "content": "1"}], 1000, limit=5)
    second = await store.append(OWNER, "t", [{"role": "user", "content": "2"}], 2000, limit=5)
    assert (first.create_ms, second.create_ms, second.message_count) == (1000, 1000, 2)


async def test_sessions_belong_to_their_owner(store: SessionStore) -> None:
    await store.append(OWNER, "private", [{"role": "user", "content": "mine"}], 1, limit=5)
    assert await store.get("bob", "private") is None
    assert (await store.page("bob", None, 10)).sessions == []
    assert not await store.delete("bob", "private")
    assert await store.get(OWNER, "private") is not None
