"""How the chat service finds agents: GetAgent over gRPC, with a short local cache.

Results (misses too) are kept for `ttl_s`, counted from when the lookup was sent, so a
changed or deleted agent takes effect within that time. Concurrent lookups of the same
name by the same caller share one call. Each lookup forwards its own caller's
`authorization` and `x-request-id`, so the registry authenticates (and decides what the
caller may see) for every caller; cached results are kept per caller (principal) too.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Sequence

import grpc

from clawgate.agents.v1 import agent_service_pb2 as pb
from clawgate.agents.v1 import agent_service_pb2_grpc as pb_grpc
from clawgate.common.auth import bearer_token
from clawgate.common.errors import ApiError
from clawgate.common.tokens import token_id

DEADLINE_S = 2.0
LIST_PAGE_SIZE = 1000
# Beyond this many cached names, expired entries are dropped (misses can be many).
CACHE_SOFT_LIMIT = 4096
_FORWARDED = frozenset({"authorization", "x-request-id"})
_SENDABLE = re.compile(r"[\x20-\x7e]*")
_RETRY_LATER = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
# A registry restarting (UNAVAILABLE) is retried by the channel within the deadline.
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "clawgate.agents.v1.AgentService"}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)

Metadata = Sequence[tuple[str, str]]
CacheKey = tuple[str, str]  # (caller, name or id)


class AgentResolver:
    def __init__(self, target: str, ttl_s: float = 1.0) -> None:
        self._target = target
        self._ttl_s = ttl_s
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.AgentServiceAsyncStub | None = None
        # (caller, name or id) → (monotonic expiry, agent or None for "no such agent")
        self._cache: dict[CacheKey, tuple[float, pb.Agent | None]] = {}
        self._inflight: dict[CacheKey, asyncio.Task[pb.Agent | None]] = {}

    def _client(self) -> pb_grpc.AgentServiceAsyncStub:
        # Created on first use, inside the running event loop that will use it.
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(
                self._target,
                options=[("grpc.service_config", _SERVICE_CONFIG), ("grpc.enable_retries", 1)],
            )
            self._stub = pb_grpc.AgentServiceStub(self._channel)
        return self._stub

    async def resolve(self, name_or_id: str, metadata: Metadata) -> pb.Agent | None:
        """The agent with this name or id, None if there is none; ApiError if unreachable."""
        if not name_or_id:
            return None
        forwarded = _forwarded(metadata)
        key = (_caller(forwarded), name_or_id)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return _copy(cached[1])
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(key, forwarded))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: one caller giving up must not cancel the lookup others wait for.
        return _copy(await asyncio.shield(task))

    async def list_agents(self, metadata: Metadata) -> list[pb.Agent]:
        """Every agent, following next_page_token to the end."""
        stub = self._client()
        forwarded = _forwarded(metadata)
        agents: list[pb.Agent] = []
        token = ""
        seen: set[str] = set()
        while True:
            request = pb.ListAgentsRequest(page_size=LIST_PAGE_SIZE, page_token=token)
            try:
                page = await stub.ListAgents(request, metadata=forwarded, timeout=DEADLINE_S)
            except grpc.aio.AioRpcError as err:
                raise _relay(err) from None
            agents.extend(page.agents)
            token = page.next_page_token
            if not token or token in seen:
                return agents
            seen.add(token)

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        if self._channel is not None:
            await self._channel.close(None)
        self._channel = None
        self._stub = None

    async def _fetch(self, key: CacheKey, metadata: Metadata) -> pb.Agent | None:
        sent = time.monotonic()
        agent: pb.Agent | None
        try:
            request = pb.GetAgentRequest(id=key[1])
            agent = await self._client().GetAgent(request, metadata=metadata, timeout=DEADLINE_S)
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.NOT_FOUND:
                raise _relay(err) from None
            agent = None
        self._remember(key, sent + self._ttl_s, agent)
        return agent

    def _remember(self, key: CacheKey, expires: float, agent: pb.Agent | None) -> None:
        if len(self._cache) >= CACHE_SOFT_LIMIT:
            now = time.monotonic()
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        self._cache[key] = (expires, agent)

    def _forget(self, key: CacheKey, task: asyncio.Task[pb.Agent | None]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so an orphaned failure is not logged as lost


def _forwarded(metadata: Metadata) -> tuple[tuple[str, str], ...]:
    # Only values gRPC can send on: Envoy passes e.g. a tab in a client's x-request-id,
    # which grpc refuses to send (found by the fuzzer: a 500).
    return tuple(
        (k.lower(), v) for k, v in metadata if k.lower() in _FORWARDED and _SENDABLE.fullmatch(v)
    )


def _caller(forwarded: Metadata) -> str:
    """Who asks: the id of the forwarded token (never the token), "" for none."""
    token = bearer_token(forwarded)
    return token_id(token) if token else ""


def _copy(agent: pb.Agent | None) -> pb.Agent | None:
    # Callers get their own message: nobody can change what the cache holds.
    if agent is None:
        return None
    copy = pb.Agent()
    copy.CopyFrom(agent)
    return copy


def _relay(err: grpc.aio.AioRpcError) -> ApiError:
    code = err.code()
    if code in _RETRY_LATER:
        return ApiError(
            503,
            "agent registry unavailable; retry shortly",
            code="agent_registry_unavailable",
            retry_after=1,
        )
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ApiError(400, f"invalid agent reference: {err.details()}", param="model")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return ApiError(
            403,
            "permission denied: using an agent needs a token with the 'agents:read' scope",
            param="model",
            code="permission_denied",
        )
    if code == grpc.StatusCode.UNAUTHENTICATED:
        # The chat service accepted this token, so the two services disagree on tokens.
        return ApiError(
            502,
            "agent registry refused the gateway token; chat and agents must share tokens",
            code="agent_registry_auth",
        )
    return ApiError(
        502, f"agent registry failed ({code.name.lower()})", code="agent_registry_error"
    )
