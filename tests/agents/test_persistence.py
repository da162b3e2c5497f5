"""Nothing acknowledged is lost: agents survive a registry restart and a Redis restart
(AOF), and while Redis is down the registry answers a retryable 503, not a 500."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from clawgate.agents.v1 import agent_service_pb2 as pb
from clawgate.launcher.processes import Child, free_port, port_open, redis_child
from tests.agents.conftest import AUTH, Registry, failure, running_registry


class OwnRedis:
    """A redis-server child of this test (never the shared one), restartable on one dir."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.dir = tmp / "redis-data"
        self.log = tmp / "redis.log"
        self.child: Child | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.child = redis_child(self.port, self.dir, self.log).start()
        self.child.wait_ready(lambda: port_open("127.0.0.1", self.port))

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    redis = OwnRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


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


async def test_agents_survive_a_redis_restart_and_outage_is_a_503(own_redis: OwnRedis) -> None:
    async with running_registry(own_redis.url) as registry:
        before = await populate(registry)
        await asyncio.to_thread(own_redis.stop)

        failed = await failure(
            registry.stub.GetAgent(pb.GetAgentRequest(id="renamed"), metadata=AUTH)
        )
        assert failed.code is grpc.StatusCode.UNAVAILABLE
        assert failed.error["code"] == "store_unavailable"
        assert str(own_redis.port) not in failed.message

        await asyncio.to_thread(own_redis.start)
        # The same registry process reconnects by itself.
        assert await snapshot(registry) == before
        assert (await registry.get("renamed")).system_prompt == "hi"
        # Name index and order index came back too: the names are still taken.
        taken = await failure(registry.create(name="keep-05"))
        assert taken.code is grpc.StatusCode.ALREADY_EXISTS


async def test_redis_refusing_writes_is_a_503_not_a_500(own_redis: OwnRedis) -> None:
    async with running_registry(own_redis.url) as registry:
        redis = registry.store._redis
        await redis.config_set("maxmemory", "1")  # every write is now refused with OOM
        try:
            failed = await failure(registry.create(name="too-much"))
        finally:
            await redis.config_set("maxmemory", "0")
        assert failed.code is grpc.StatusCode.UNAVAILABLE
        assert failed.error["code"] == "store_unavailable"
        assert (await registry.create(name="too-much")).name == "too-much"
