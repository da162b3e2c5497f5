"""The agent registry in-process: the real servicer behind the gateway interceptor, on a
real grpc.aio server and a real Redis, called through a real channel."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from clawgate.agents.v1 import agent_service_pb2 as pb
from clawgate.agents.v1 import agent_service_pb2_grpc as pb_grpc
from clawgate.common.auth import Authenticator
from clawgate.common.config import Config, parse_providers
from clawgate.common.errors import ERROR_JSON_KEY
from clawgate.common.server import GatewayInterceptor
from services.agents.servicer import AgentServicer
from services.agents.store import AgentStore, connect
from services.agents.validation import ModelCatalog
from tests.stack_config import gateway_config

TOKEN = "cg-test-agents-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)

# The suite's gateway config (the workers' URLs do not matter to the registry).
_PROVIDERS = gateway_config({name: "http://127.0.0.1:9" for name in ("main", "pool-a", "pool-b")})
CATALOG = ModelCatalog.from_config(Config(providers=parse_providers(_PROVIDERS["providers"])))


@dataclass
class Registry:
    stub: pb_grpc.AgentServiceAsyncStub
    store: AgentStore
    namespace: str
    target: str

    async def create(self, **fields: Any) -> pb.Agent:
        return await self.stub.CreateAgent(
            pb.CreateAgentRequest(agent=agent(**fields)), metadata=AUTH
        )

    async def get(self, id_or_name: str) -> pb.Agent:
        return await self.stub.GetAgent(pb.GetAgentRequest(id=id_or_name), metadata=AUTH)

    async def update(
        self,
        patch: pb.Agent,
        mask: list[str] | None = None,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> pb.Agent:
        request = pb.UpdateAgentRequest(agent=patch)
        if mask is not None:
            request.update_mask.paths.extend(mask)
        return await self.stub.UpdateAgent(request, metadata=AUTH + metadata)


def agent(**fields: Any) -> pb.Agent:
    """An Agent message; `config` may be a dict."""
    fields.setdefault("model", "qwen3:32b")
    return pb.Agent(**fields)


def unique_name(prefix: str = "agent") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Failure:
    code: grpc.StatusCode
    message: str
    error: dict[str, Any]  # the OpenAI error object from the trailing metadata


async def failure(call: Any) -> Failure:
    """Await a call that must fail; its status and OpenAI error."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    err = caught.value
    # grpc.aio.Metadata iterates (key, value) tuples, whatever the stubs say.
    raw: Any = err.trailing_metadata() or ()
    trailers: dict[str, Any] = dict(raw)
    body = json.loads(trailers[ERROR_JSON_KEY])
    return Failure(err.code(), err.details() or "", body["error"])


@contextlib.asynccontextmanager
async def running_registry(
    redis_url: str, namespace: str | None = None, catalog: ModelCatalog = CATALOG
) -> AsyncIterator[Registry]:
    """The registry on 127.0.0.1:0 with its own namespace (fresh unless given)."""
    namespace = namespace or f"test-{uuid.uuid4().hex[:8]}"
    store = AgentStore(connect(redis_url), namespace)
    server = grpc.aio.server(interceptors=[GatewayInterceptor(Authenticator([TOKEN]))])
    pb_grpc.add_AgentServiceServicer_to_server(AgentServicer(store, catalog), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    target = f"127.0.0.1:{port}"
    channel = grpc.aio.insecure_channel(target)
    try:
        yield Registry(pb_grpc.AgentServiceStub(channel), store, namespace, target)
    finally:
        await channel.close(None)
        await server.stop(None)
        await store.close()


@pytest.fixture
async def registry(redis_url: str) -> AsyncIterator[Registry]:
    async with running_registry(redis_url) as running:
        yield running
