"""The agent registry over gRPC, in-process against real Redis: CRUD, validation,
conflicts, etags, idempotency and pagination."""

from __future__ import annotations

import asyncio
import math

import grpc
import pytest

from clawgate.agents.v1 import agent_service_pb2 as pb
from services.agents.records import looks_like_id
from tests.agents.conftest import AUTH, Registry, agent, failure, unique_name

SEED = {
    "description": "客服助手, answers in Chinese",
    "model": "qwen3:32b",
    "config": {"temperature": 0.7, "max_tokens": 2000},
}


async def test_create_returns_the_stored_agent_and_get_finds_it_by_id_and_name(
    registry: Registry,
) -> None:
    name = unique_name()
    created = await registry.create(name=name, **SEED)
    assert looks_like_id(created.id)
    assert created.name == name
    assert created.description == SEED["description"]
    assert created.model == "qwen3:32b"
    assert created.config.temperature == pytest.approx(0.7)
    assert created.config.max_tokens == 2000
    assert not created.config.HasField("top_p")
    assert created.system_prompt == ""
    assert created.etag
    assert created.created_at.seconds > 0
    assert created.created_at == created.updated_at
    assert await registry.get(created.id) == created
    assert await registry.get(name) == created


async def test_output_only_fields_in_a_create_are_ignored(registry: Registry) -> None:
    created = await registry.create(
        name=unique_name(), id="agt_" + "0" * 24, etag="mine", created_at={"seconds": 5}
    )
    assert created.id != "agt_" + "0" * 24
    assert created.etag != "mine"
    assert created.created_at.seconds > 5


@pytest.mark.parametrize(
    ("fields", "param", "text"),
    [
        ({"model": "qwen3:32b"}, "name", "name is required"),
        ({"name": "bad name"}, "name", "letters, digits"),
        ({"name": "-dash-first"}, "name", "start with a letter or digit"),
        ({"name": "x" * 65}, "name", "at most 64"),
        ({"name": "agent:helper"}, "name", "must not start with 'agent:'"),
        ({"name": "agt_0123456789abcdef01234567"}, "name", "reserved for agent ids"),
        ({"name": "ok", "model": ""}, "model", "model is required"),
        ({"name": "ok", "model": "gpt-4o"}, "model", "configured models: gemma3:4b"),
        ({"name": "ok", "config": {"temperature": 2.5}}, "config.temperature", "between 0 and 2"),
        ({"name": "ok", "config": {"temperature": -0.1}}, "config.temperature", "between"),
        ({"name": "ok", "config": {"temperature": math.nan}}, "config.temperature", "between"),
        ({"name": "ok", "config": {"top_p": 1.5}}, "config.top_p", "between 0 and 1"),
        ({"name": "ok", "config": {"presence_penalty": 3}}, "config.presence_penalty", "-2"),
        ({"name": "ok", "config": {"frequency_penalty": -3}}, "config.frequency_penalty", "2"),
        ({"name": "ok", "config": {"max_tokens": 0}}, "config.max_tokens", "at least 1"),
        ({"name": "ok", "config": {"max_tokens": 4097}}, "config.max_tokens", "at most 4096"),
        (
            {"name": "ok", "model": "llama3.2:latest", "config": {"max_tokens": 4096}},
            "config.max_tokens",
            "at most 2048",
        ),
        ({"name": "ok", "config": {"stop": ["a", "b", "c", "d", "e"]}}, "config.stop", "at most 4"),
        ({"name": "ok", "config": {"stop": [""]}}, "config.stop", "1 to 256"),
        ({"name": "ok", "description": "d" * 4097}, "description", "at most 4096"),
    ],
)
async def test_invalid_agents_are_rejected_naming_the_field(
    registry: Registry, fields: dict[str, object], param: str, text: str
) -> None:
    failed = await failure(registry.create(**fields))
    assert failed.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failed.error["param"] == param
    assert failed.error["type"] == "invalid_request_error"
    assert text in failed.message
    assert (await registry.stub.ListAgents(pb.ListAgentsRequest(), metadata=AUTH)).total_size == 0


async def test_unicode_names_are_allowed_and_normalized(registry: Registry) -> None:
    created = await registry.create(name="cafe\u0301-助手")  # decomposed é
    assert created.name == "café-助手"  # composed (NFC)
    assert (await registry.get("cafe\u0301-助手")).id == created.id


async def test_duplicate_name_is_a_conflict(registry: Registry) -> None:
    name = unique_name()
    await registry.create(name=name)
    failed = await failure(registry.create(name=name, description="another"))
    assert failed.code is grpc.StatusCode.ALREADY_EXISTS
    assert failed.error["param"] == "name"
    assert failed.error["type"] == "conflict_error"


async def test_racing_creates_with_one_name_make_exactly_one_agent(registry: Registry) -> None:
    name = unique_name()
    results = await asyncio.gather(
        *(registry.create(name=name) for _ in range(10)), return_exceptions=True
    )
    created = [r for r in results if isinstance(r, pb.Agent)]
    conflicts = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(created) == 1
    assert len(conflicts) == 9
    assert all(c.code() is grpc.StatusCode.ALREADY_EXISTS for c in conflicts)


async def test_unknown_agent_is_not_found_for_every_method(registry: Registry) -> None:
    for ref in ("agt_" + "f" * 24, "nobody-here"):
        calls = [
            registry.stub.GetAgent(pb.GetAgentRequest(id=ref), metadata=AUTH),
            registry.stub.UpdateAgent(
                pb.UpdateAgentRequest(agent=pb.Agent(id=ref, description="x")), metadata=AUTH
            ),
            registry.stub.DeleteAgent(pb.DeleteAgentRequest(id=ref), metadata=AUTH),
        ]
        for call in calls:
            failed = await failure(call)
            assert failed.code is grpc.StatusCode.NOT_FOUND
            assert failed.error["code"] == "agent_not_found"
            assert ref in failed.message


async def test_empty_id_is_invalid(registry: Registry) -> None:
    failed = await failure(registry.stub.GetAgent(pb.GetAgentRequest(id=""), metadata=AUTH))
    assert failed.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failed.error["param"] == "id"


async def test_calls_without_a_token_are_refused(registry: Registry) -> None:
    failed = await failure(registry.stub.ListAgents(pb.ListAgentsRequest()))
    assert failed.code is grpc.StatusCode.UNAUTHENTICATED


# -- updates -----------------------------------------------------------------------------


async def test_update_without_mask_changes_only_the_fields_given(registry: Registry) -> None:
    created = await registry.create(name=unique_name(), system_prompt="be brief", **SEED)
    updated = await registry.update(
        pb.Agent(id=created.id, description="new words", config=pb.AgentConfig(temperature=0.0))
    )
    assert updated.description == "new words"
    assert updated.config.HasField("temperature") and updated.config.temperature == 0.0
    assert updated.config.max_tokens == 2000  # untouched
    assert updated.system_prompt == "be brief"
    assert updated.name == created.name and updated.model == created.model
    assert updated.etag != created.etag
    assert updated.created_at == created.created_at
    assert updated.updated_at.ToMilliseconds() >= created.updated_at.ToMilliseconds()
    assert await registry.get(created.id) == updated


async def test_update_with_mask_changes_exactly_the_named_fields(registry: Registry) -> None:
    created = await registry.create(name=unique_name(), system_prompt="be brief", **SEED)
    patch = pb.Agent(id=created.id, description="ignored", model="llama3.2:latest")
    # system_prompt is named but absent: cleared. description is given but not named: kept.
    updated = await registry.update(patch, mask=["model", "system_prompt", "config.maxTokens"])
    assert updated.model == "llama3.2:latest"
    assert updated.system_prompt == ""
    assert updated.description == created.description
    assert not updated.config.HasField("max_tokens")
    assert updated.config.temperature == pytest.approx(0.7)


async def test_update_mask_config_replaces_the_whole_config(registry: Registry) -> None:
    created = await registry.create(name=unique_name(), **SEED)
    updated = await registry.update(
        pb.Agent(id=created.id, config=pb.AgentConfig(top_p=0.5, stop=["END"])), mask=["config"]
    )
    assert updated.config == pb.AgentConfig(top_p=0.5, stop=["END"])


async def test_update_by_name_and_rename(registry: Registry) -> None:
    old, new = unique_name(), unique_name()
    created = await registry.create(name=old)
    renamed = await registry.update(pb.Agent(id=old, name=new))
    assert renamed.id == created.id and renamed.name == new
    assert (await registry.get(new)).id == created.id
    assert (await failure(registry.get(old))).code is grpc.StatusCode.NOT_FOUND
    # The old name is free again.
    assert (await registry.create(name=old)).id != created.id


async def test_rename_onto_a_taken_name_is_a_conflict(registry: Registry) -> None:
    first, second = unique_name(), unique_name()
    await registry.create(name=first)
    other = await registry.create(name=second)
    failed = await failure(registry.update(pb.Agent(id=other.id, name=first)))
    assert failed.code is grpc.StatusCode.ALREADY_EXISTS
    assert failed.error["param"] == "name"
    assert (await registry.get(second)) == other


async def test_update_validates_the_result(registry: Registry) -> None:
    created = await registry.create(name=unique_name(), config=pb.AgentConfig(max_tokens=3000))
    # 3000 tokens is within qwen3:32b's 4096 but not llama3.2's 2048: changing only the
    # model must fail on the stored max_tokens.
    failed = await failure(registry.update(pb.Agent(id=created.id, model="llama3.2:latest")))
    assert failed.error["param"] == "config.max_tokens"
    assert "at most 2048" in failed.message
    failed = await failure(registry.update(pb.Agent(id=created.id, model="nope")))
    assert failed.error["param"] == "model"
    failed = await failure(registry.update(pb.Agent(id=created.id), mask=["name"]))
    assert failed.error["param"] == "name"
    assert await registry.get(created.id) == created
    moved = await registry.update(
        pb.Agent(id=created.id, model="llama3.2:latest", config=pb.AgentConfig(max_tokens=2048))
    )
    assert (moved.model, moved.config.max_tokens) == ("llama3.2:latest", 2048)


@pytest.mark.parametrize(
    ("mask", "text"),
    [
        (["id"], "cannot be updated"),
        (["created_at"], "cannot be updated"),
        (["etag"], "If-Match"),
        (["colour"], "unknown field 'colour'"),
    ],
)
async def test_bad_update_masks_are_rejected(
    registry: Registry, mask: list[str], text: str
) -> None:
    created = await registry.create(name=unique_name())
    failed = await failure(registry.update(pb.Agent(id=created.id, description="x"), mask=mask))
    assert failed.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failed.error["param"] == "update_mask"
    assert text in failed.message


async def test_update_with_nothing_to_change_is_rejected(registry: Registry) -> None:
    created = await registry.create(name=unique_name())
    failed = await failure(registry.update(pb.Agent(id=created.id)))
    assert failed.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "nothing to update" in failed.message


async def test_stale_etag_is_refused_from_header_or_field(registry: Registry) -> None:
    created = await registry.create(name=unique_name())
    current = await registry.update(pb.Agent(id=created.id, description="v2"))
    stale = created.etag
    for call in (
        registry.update(pb.Agent(id=created.id, description="v3", etag=stale)),
        registry.update(
            pb.Agent(id=created.id, description="v3"), metadata=(("if-match", f'"{stale}"'),)
        ),
        registry.stub.DeleteAgent(pb.DeleteAgentRequest(id=created.id, etag=stale), metadata=AUTH),
    ):
        failed = await failure(call)
        assert failed.code is grpc.StatusCode.FAILED_PRECONDITION
        assert failed.error["param"] == "etag"
        assert failed.error["code"] == "etag_mismatch"
    assert await registry.get(created.id) == current


async def test_matching_etag_or_star_lets_the_update_through(registry: Registry) -> None:
    created = await registry.create(name=unique_name())
    second = await registry.update(pb.Agent(id=created.id, description="2", etag=created.etag))
    third = await registry.update(
        pb.Agent(id=created.id, description="3"), metadata=(("if-match", second.etag),)
    )
    fourth = await registry.update(
        pb.Agent(id=created.id, description="4"), metadata=(("if-match", "*"),)
    )
    assert fourth.description == "4"
    assert len({created.etag, second.etag, third.etag, fourth.etag}) == 4


async def test_if_match_and_etag_field_must_agree(registry: Registry) -> None:
    created = await registry.create(name=unique_name())
    failed = await failure(
        registry.update(
            pb.Agent(id=created.id, description="x", etag=created.etag),
            metadata=(("if-match", "something-else"),),
        )
    )
    assert failed.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failed.error["param"] == "etag"


async def test_concurrent_updates_with_one_etag_exactly_one_wins(registry: Registry) -> None:
    created = await registry.create(name=unique_name())
    results = await asyncio.gather(
        *(
            registry.update(pb.Agent(id=created.id, description=f"editor {i}", etag=created.etag))
            for i in range(12)
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, pb.Agent)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert len(losers) == 11
    assert all(e.code() is grpc.StatusCode.FAILED_PRECONDITION for e in losers)
    assert await registry.get(created.id) == winners[0]


async def test_concurrent_updates_without_etag_lose_nothing(registry: Registry) -> None:
    created = await registry.create(name=unique_name())
    patches = [
        pb.Agent(id=created.id, description="d"),
        pb.Agent(id=created.id, system_prompt="s"),
        pb.Agent(id=created.id, config=pb.AgentConfig(temperature=1.5)),
        pb.Agent(id=created.id, config=pb.AgentConfig(top_p=0.25)),
        pb.Agent(id=created.id, config=pb.AgentConfig(presence_penalty=-1)),
    ]
    await asyncio.gather(*(registry.update(p) for p in patches))
    final = await registry.get(created.id)
    assert final.description == "d" and final.system_prompt == "s"
    assert final.config == pb.AgentConfig(temperature=1.5, top_p=0.25, presence_penalty=-1)


# -- delete ------------------------------------------------------------------------------


async def test_delete_by_id_or_name_frees_the_name(registry: Registry) -> None:
    for by_name in (False, True):
        name = unique_name()
        created = await registry.create(name=name)
        ref = name if by_name else created.id
        await registry.stub.DeleteAgent(pb.DeleteAgentRequest(id=ref), metadata=AUTH)
        assert (await failure(registry.get(created.id))).code is grpc.StatusCode.NOT_FOUND
        assert (await failure(registry.get(name))).code is grpc.StatusCode.NOT_FOUND
        assert (await registry.create(name=name)).id != created.id


async def test_delete_with_current_etag_works(registry: Registry) -> None:
    created = await registry.create(name=unique_name())
    await registry.stub.DeleteAgent(
        pb.DeleteAgentRequest(id=created.id), metadata=(*AUTH, ("if-match", created.etag))
    )
    assert (await failure(registry.get(created.id))).code is grpc.StatusCode.NOT_FOUND


# -- idempotency -------------------------------------------------------------------------


async def create_with_key(registry: Registry, key: str, **fields: object) -> pb.Agent:
    return await registry.stub.CreateAgent(
        pb.CreateAgentRequest(agent=agent(**fields)), metadata=(*AUTH, ("idempotency-key", key))
    )


async def test_retried_create_with_a_key_returns_the_same_agent(registry: Registry) -> None:
    name, key = unique_name(), unique_name("key")
    first = await create_with_key(registry, key, name=name, **SEED)
    again = await create_with_key(registry, key, name=name, **SEED)
    assert again == first
    by_field = await registry.stub.CreateAgent(
        pb.CreateAgentRequest(agent=agent(name=name, **SEED), request_id=key), metadata=AUTH
    )
    assert by_field == first
    listed = await registry.stub.ListAgents(pb.ListAgentsRequest(), metadata=AUTH)
    assert [a.id for a in listed.agents] == [first.id]


async def test_replay_returns_the_agent_as_created_even_after_changes(registry: Registry) -> None:
    name, key = unique_name(), unique_name("key")
    first = await create_with_key(registry, key, name=name)
    await registry.update(pb.Agent(id=first.id, description="changed"))
    assert await create_with_key(registry, key, name=name) == first


async def test_racing_retries_with_one_key_create_one_agent(registry: Registry) -> None:
    name, key = unique_name(), unique_name("key")
    results = await asyncio.gather(*(create_with_key(registry, key, name=name) for _ in range(10)))
    assert len({r.id for r in results}) == 1
    listed = await registry.stub.ListAgents(pb.ListAgentsRequest(), metadata=AUTH)
    assert listed.total_size == 1


async def test_a_key_reused_with_other_parameters_is_refused(registry: Registry) -> None:
    key = unique_name("key")
    await create_with_key(registry, key, name=unique_name())
    failed = await failure(create_with_key(registry, key, name=unique_name()))
    assert failed.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failed.error["code"] == "idempotency_key_reused"


async def test_bad_idempotency_keys_are_refused(registry: Registry) -> None:
    for key in ("has space", "k" * 256):
        failed = await failure(create_with_key(registry, key, name=unique_name()))
        assert failed.code is grpc.StatusCode.INVALID_ARGUMENT
        assert failed.error["param"] == "Idempotency-Key"
    failed = await failure(
        registry.stub.CreateAgent(
            pb.CreateAgentRequest(agent=agent(name=unique_name()), request_id="a"),
            metadata=(*AUTH, ("idempotency-key", "b")),
        )
    )
    assert failed.error["param"] == "request_id"


async def test_idempotency_keys_expire_after_a_day(registry: Registry) -> None:
    key = unique_name("key")
    await create_with_key(registry, key, name=unique_name())
    redis = registry.store._redis
    ttl = await redis.ttl(f"{registry.namespace}:agents:idem:admin:{key}")
    assert 24 * 3600 - 60 < ttl <= 24 * 3600


# -- listing -----------------------------------------------------------------------------


async def list_all(registry: Registry, page_size: int) -> tuple[list[pb.Agent], int]:
    agents: list[pb.Agent] = []
    token, pages = "", 0
    while True:
        page = await registry.stub.ListAgents(
            pb.ListAgentsRequest(page_size=page_size, page_token=token), metadata=AUTH
        )
        pages += 1
        agents.extend(page.agents)
        token = page.next_page_token
        if not token:
            return agents, pages


async def test_pagination_over_250_agents_is_complete_and_stable(registry: Registry) -> None:
    created = await asyncio.gather(*(registry.create(name=f"bulk-{i:03d}") for i in range(250)))
    listed, pages = await list_all(registry, 100)
    assert pages == 3
    assert len(listed) == 250
    assert {a.id for a in listed} == {a.id for a in created}
    keys = [(a.created_at.ToMilliseconds(), a.id) for a in listed]
    assert keys == sorted(keys)
    first = await registry.stub.ListAgents(pb.ListAgentsRequest(), metadata=AUTH)
    assert len(first.agents) == 50  # the default page size
    assert first.total_size == 250
    assert [a.id for a in first.agents] == [a.id for a in listed[:50]]
    assert (await list_all(registry, 7))[0] == listed


async def test_paging_continues_after_the_cursor_even_if_it_was_deleted(
    registry: Registry,
) -> None:
    for i in range(6):
        await registry.create(name=f"p-{i}")
    everything, _ = await list_all(registry, 1000)
    page = await registry.stub.ListAgents(pb.ListAgentsRequest(page_size=3), metadata=AUTH)
    assert list(page.agents) == everything[:3]
    await registry.stub.DeleteAgent(pb.DeleteAgentRequest(id=page.agents[-1].id), metadata=AUTH)
    await asyncio.sleep(0.002)  # a later millisecond: sorts after every agent above
    added = await registry.create(name="p-late")
    rest = await registry.stub.ListAgents(
        pb.ListAgentsRequest(page_size=10, page_token=page.next_page_token), metadata=AUTH
    )
    assert list(rest.agents) == [*everything[3:], added]
    assert rest.next_page_token == ""
    assert rest.total_size == 6


async def test_page_size_limits_and_bad_tokens(registry: Registry) -> None:
    await registry.create(name=unique_name())
    failed = await failure(
        registry.stub.ListAgents(pb.ListAgentsRequest(page_size=-1), metadata=AUTH)
    )
    assert failed.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failed.error["param"] == "page_size"
    huge = await registry.stub.ListAgents(pb.ListAgentsRequest(page_size=10**6), metadata=AUTH)
    assert len(huge.agents) == 1
    for token in ("garbage!", "WzEsMl0", "eyJhIjoxfQ"):  # not base64, [1,2], {"a":1}
        failed = await failure(
            registry.stub.ListAgents(pb.ListAgentsRequest(page_token=token), metadata=AUTH)
        )
        assert failed.code is grpc.StatusCode.INVALID_ARGUMENT
        assert failed.error["param"] == "page_token"
