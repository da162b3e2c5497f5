"""The model catalogue: configured models (with their metadata) and agents, in OpenAI's
list shape, plus whether each model is actually pulled on a live worker.

Availability comes from each worker's probe through its provider adapter (the same probe
the health report shows), remembered for a few seconds so listing models never hammers
the workers; a worker that does not answer within PROBE_TIMEOUT_S, or does not serve its
provider's API, counts as having nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import aiohttp

from clawgate.agents.v1 import agent_service_pb2 as agents_pb
from clawgate.chat.v1 import chat_service_pb2 as pb
from clawgate.common.config import Config, ModelSpec, ProviderSpec
from clawgate.common.errors import ApiError, not_found, quote
from services.chat.agent_resolver import AgentResolver
from services.chat.agents import AGENT_PREFIX, agent_reference
from services.chat.providers import adapter_for
from services.chat.providers.base import UpstreamFailure, public_url
from services.chat.providers.probe import WorkerProbe

log = logging.getLogger("clawgate.chat.models")

AVAILABILITY_TTL_S = 5.0
PROBE_TIMEOUT_S = 2.0
AGENT_OWNER = "clawgate"

Metadata = Sequence[tuple[str, str]]


class ModelCatalogue:
    def __init__(
        self,
        config: Config,
        session: aiohttp.ClientSession,
        resolver: AgentResolver | None = None,
        *,
        ttl_s: float = AVAILABILITY_TTL_S,
    ) -> None:
        self._config = config
        self._session = session
        self._resolver = resolver
        self._ttl_s = ttl_s
        self._started = int(time.time())
        self._probed: dict[tuple[str, str], tuple[float, WorkerProbe | None]] = {}
        self._probes: dict[tuple[str, str], asyncio.Task[WorkerProbe | None]] = {}

    async def list_models(self, metadata: Metadata) -> pb.ListModelsResponse:
        # Concurrent: workers are probed once each, in parallel, however many models.
        configured = asyncio.gather(*(self._describe(p, m) for p, m in self._config.models()))
        models, agents = await asyncio.gather(configured, self._agents(metadata))
        described = await asyncio.gather(*(self._describe_agent(a) for a in agents))
        return pb.ListModelsResponse(object="list", data=[*models, *described])

    async def get_model(self, model_id: str, metadata: Metadata) -> pb.Model:
        reference = agent_reference(model_id)
        if reference is not None:
            agent = await self._resolver.resolve(reference, metadata) if self._resolver else None
            if agent is None:
                raise not_found(
                    f"The agent {quote(reference)} does not exist.", "model", "agent_not_found"
                )
            return await self._describe_agent(agent)
        found = self._config.find_model(model_id)
        if not found:
            known = ", ".join(m.id for _, m in self._config.models()) or "(none)"
            raise not_found(
                f"The model {quote(model_id)} does not exist on this gateway. Configured models: "
                f"{known}.",
                "model",
                "model_not_found",
            )
        return await self._describe(*found[0])

    async def _describe(self, provider: ProviderSpec, model: ModelSpec) -> pb.Model:
        created = await self._created_on_worker(provider, model)
        return pb.Model(
            id=model.id,
            object="model",
            created=created or self._started,
            owned_by=provider.id,
            name=model.name,
            provider=provider.id,
            context_window=model.context_window,
            max_tokens=model.max_tokens,
            reasoning=model.reasoning,
            input=list(model.input),
            cost=pb.ModelCost(
                input=model.cost.input,
                output=model.cost.output,
                cache_read=model.cost.cache_read,
                cache_write=model.cost.cache_write,
            ),
            available=created is not None,
        )

    async def _describe_agent(self, agent: agents_pb.Agent) -> pb.Model:
        found = self._config.find_model(agent.model) if agent.model else []
        described = await self._describe(*found[0]) if found else pb.Model()
        described.id = AGENT_PREFIX + (agent.name or agent.id)
        described.object = "model"
        described.created = agent.created_at.seconds or self._started
        described.owned_by = AGENT_OWNER
        described.name = agent.name or agent.id
        described.agent_model = agent.model
        return described

    async def _agents(self, metadata: Metadata) -> list[agents_pb.Agent]:
        if self._resolver is None:
            return []
        try:
            return await self._resolver.list_agents(metadata)
        except ApiError as err:
            # The model list stays useful when the registry is down; agents are left out.
            log.warning("agents left out of the model list", extra={"error": err.message})
            return []

    async def _created_on_worker(self, provider: ProviderSpec, model: ModelSpec) -> int | None:
        """When some worker of `provider` has `model`: its created time; else None."""
        probes = await asyncio.gather(*(self._probe_of(provider, w) for w in provider.workers))
        for probe in probes:
            created = probe.created(model.id) if probe is not None else None
            if created is not None:
                return created or self._started
        return None

    async def _probe_of(self, provider: ProviderSpec, worker: str) -> WorkerProbe | None:
        key = (provider.id, worker)
        cached = self._probed.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        probe = self._probes.get(key)
        if probe is None:  # concurrent listings share one probe per worker
            probe = asyncio.create_task(self._probe(provider, worker))
            self._probes[key] = probe
            probe.add_done_callback(lambda _: self._probes.pop(key, None))
        return await asyncio.shield(probe)

    async def _probe(self, provider: ProviderSpec, worker: str) -> WorkerProbe | None:
        probe: WorkerProbe | None = None
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                probe = await adapter_for(provider.api).probe(self._session, provider, worker)
        except (UpstreamFailure, TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.info(
                "worker probe failed",
                extra={"worker": public_url(worker), "error": str(exc) or type(exc).__name__},
            )
        self._probed[(provider.id, worker)] = (time.monotonic() + self._ttl_s, probe)
        return probe

    async def close(self) -> None:
        for probe in list(self._probes.values()):
            probe.cancel()
