"""The chat service's AgentResolver against the real registry: lookups, the short cache,
token forwarding, shared lookups and errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from clawgate.agents.v1 import agent_service_pb2 as pb
from clawgate.common.errors import ApiError
from clawgate.launcher.processes import free_port
from services.agents.records import AgentRecord
from services.chat import agent_resolver
from services.chat.agent_resolver import AgentResolver
from tests.agents.conftest import AUTH, Registry, unique_name

TTL_S = 0.3


@pytest.fixture
async def resolver(registry: Registry) -> AsyncIterator[AgentResolver]:
    resolving = AgentResolver(registry.target, ttl_s=TTL_S)
    yield resolving
    await resolving.close()


async def test_resolves_by_name_and_by_id(registry: Registry, resolver: AgentResolver) -> None:
    created = await registry.create(name=unique_name(), system_prompt="be kind")
    assert await resolver.resolve(created.name, AUTH) == created
    assert await resolver.resolve(created.id, AUTH) == created


async def test_unknown_or_empty_names_resolve_to_none(resolver: AgentResolver) -> None:
    assert await resolver.resolve("nobody-" + unique_name(), AUTH) is None
    assert await resolver.resolve("", AUTH) is None


async def test_changes_and_deletes_take_effect_within_the_ttl(
    registry: Registry, resolver: AgentResolver
) -> None:
    created = await registry.create(name=unique_name(), description="old")
    assert await resolver.resolve(created.name, AUTH) == created
    await registry.update(pb.Agent(id=created.id, description="new"))
    assert await resolver.resolve(created.name, AUTH) == created  # still cached
    await asyncio.sleep(TTL_S + 0.05)
    assert (await resolver.resolve(created.name, AUTH)) == await registry.get(created.id)
    await registry.stub.DeleteAgent(pb.DeleteAgentRequest(id=created.id), metadata=AUTH)
    await asyncio.sleep(TTL_S + 0.05)
    assert await resolver.resolve(created.name, AUTH) is None


async def test_results_are_cached_for_the_ttl(
    registry: Registry, resolver: AgentResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique_name()
    lookups = count_lookups(registry, monkeypatch)
    assert await resolver.resolve(name, AUTH) is None
    created = await registry.create(name=name)
    assert await resolver.resolve(name, AUTH) is None  # the miss is remembered
    assert lookups == [name]
    await asyncio.sleep(TTL_S + 0.05)
    assert await resolver.resolve(name, AUTH) == created
    assert lookups == [name, name]


async def test_concurrent_lookups_share_one_call(
    registry: Registry, resolver: AgentResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await registry.create(name=unique_name())
    lookups = count_lookups(registry, monkeypatch)
    results = await asyncio.gather(*(resolver.resolve(created.name, AUTH) for _ in range(20)))
    assert all(r == created for r in results)
    assert lookups == [created.name]


async def test_a_cancelled_caller_does_not_cancel_the_shared_lookup(
    registry: Registry, resolver: AgentResolver
) -> None:
    created = await registry.create(name=unique_name())
    first = asyncio.create_task(resolver.resolve(created.name, AUTH))
    second = asyncio.create_task(resolver.resolve(created.name, AUTH))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == created
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_callers_get_their_own_copy(registry: Registry, resolver: AgentResolver) -> None:
    created = await registry.create(name=unique_name(), system_prompt="original")
    mine = await resolver.resolve(created.name, AUTH)
    assert mine is not None
    mine.system_prompt = "tampered"
    assert (await resolver.resolve(created.name, AUTH)) == created


async def test_the_callers_token_is_forwarded(registry: Registry, resolver: AgentResolver) -> None:
    created = await registry.create(name=unique_name())
    for metadata in ((), (("authorization", "Bearer wrong"),)):
        with pytest.raises(ApiError) as caught:
            await resolver.resolve(created.name, metadata)
        assert caught.value.code == "agent_registry_auth"
        assert "wrong" not in caught.value.message


async def test_an_unreachable_registry_is_a_retryable_503() -> None:
    resolver = AgentResolver(f"127.0.0.1:{free_port()}")
    try:
        started = time.monotonic()
        with pytest.raises(ApiError) as caught:
            await resolver.resolve("helper", AUTH)
        assert caught.value.status == 503
        assert caught.value.retryable
        assert caught.value.message == "agent registry unavailable; retry shortly"
        assert time.monotonic() - started < agent_resolver.DEADLINE_S + 1
        with pytest.raises(ApiError):
            await resolver.list_agents(AUTH)
    finally:
        await resolver.close()


async def test_list_agents_follows_every_page(
    registry: Registry, resolver: AgentResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_resolver, "LIST_PAGE_SIZE", 3)
    created = [await registry.create(name=f"listed-{i}") for i in range(8)]
    created.sort(key=lambda a: (a.created_at.ToMilliseconds(), a.id))  # the listing order
    assert await resolver.list_agents(AUTH) == created


def count_lookups(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every GetAgent that reaches the store."""
    calls: list[str] = []
    real_get = registry.store.get

    async def counting_get(id_or_name: str) -> AgentRecord | None:
        calls.append(id_or_name)
        return await real_get(id_or_name)

    monkeypatch.setattr(registry.store, "get", counting_get)
    return calls
