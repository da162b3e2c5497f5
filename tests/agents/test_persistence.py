"""Nothing acknowledged is lost: agents survive a registry restart and a Redis restart
(AOF), and while Redis is down the registry answers a retryable 503, not a 500."""

from __future__ import annotations

import asyncio

import grpc

from clawgate.agents.v1 import agent_service_pb2 as pb
from tests.agents.conftest import AUTH, Registry, failure, running_registry
from tests.conftest import PrivateRedis


async def snapshot(registry: Registry) -> list[pb.Agent]:
    page = await registry.stub.ListAgents(pb.ListAgentsRequest(page_size=1000), metadata=AUTH)
    return list(page.agents)


async def populate(registry: Registry) -> list[pb.Agent]:
    created = await asyncio.gather(*(registry.create(name=f"keep-{i:02d}") for i in range(30)))
    await registry.update(pb.Agent(id=created[0].id, name="renamed", system_prompt="hi"))
    await registry.stub.DeleteAgent(pb.DeleteAgentRequest(id=created[1].id), metadata=AUTH)
    agents = await snapshot(registry)
    assert len(agents) == 29
    return agents


async def test_agents_survive_a_registry_restart(redis_url: str) -> None:
    async with running_registry(redis_url) as registry:
        before = await populate(registry)
        namespace = registry.namespace
    async with running_registry(redis_url, namespace) as restarted:
        assert await snapshot(restarted) == before
        assert (await restarted.get("renamed")).system_prompt == "hi"


async def test_agents_survive_a_redis_restart_and_outage_is_a_503(
    private_redis: PrivateRedis,
) -> None:
    async with running_registry(private_redis.url) as registry:
        before = await populate(registry)
        await asyncio.to_thread(private_redis.stop)

        failed = await failure(
            registry.stub.GetAgent(pb.GetAgentRequest(id="renamed"), metadata=AUTH)
        )
        assert failed.code is grpc.StatusCode.UNAVAILABLE
        assert failed.error["code"] == "store_unavailable"
        assert str(private_redis.port) not in failed.message

        await asyncio.to_thread(private_redis.start)
        # The same registry process reconnects by itself.
        assert await snapshot(registry) == before
        assert (await registry.get("renamed")).system_prompt == "hi"
        # Name index and order index came back too: the names are still taken.
        taken = await failure(registry.create(name="keep-05"))
        assert taken.code is grpc.StatusCode.ALREADY_EXISTS


async def test_redis_refusing_writes_is_a_503_not_a_500(private_redis: PrivateRedis) -> None:
    async with running_registry(private_redis.url) as registry:
        redis = registry.store._redis
        await redis.config_set("maxmemory", "1")  # every write is now refused with OOM
        try:
            failed = await failure(registry.create(name="too-much"))
        finally:
            await redis.config_set("maxmemory", "0")
        assert failed.code is grpc.StatusCode.UNAVAILABLE
        assert failed.error["code"] == "store_unavailable"
        assert (await registry.create(name="too-much")).name == "too-much"
