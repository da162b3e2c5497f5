"""One pipeline for every chat method: validate → agent → limits → cache → upstream.

`Pipeline.open()` does all checks that can fail before anything is sent (so errors keep
their HTTP status) and returns an `Exchange`; `Exchange.deltas()` produces the answer as
upstream-neutral deltas, from the cache or from a worker. The servicer only renders them
(JSON object, SSE frames, typed messages).

Upstream calls go to the worker with the fewest requests in flight. Retryable failures are
retried with exponential backoff and jitter, failing over to other workers, but only
until the first delta has been handed on: after that the client already has part of the
answer and a retry could duplicate it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

from clawgate.common.config import ChatSettings, Config, ModelSpec
from clawgate.common.errors import ApiError, not_found
from services.chat.accounting import cost_usd
from services.chat.agent_resolver import AgentResolver
from services.chat.agents import agent_reference, apply_agent
from services.chat.cache import CacheDecision, PromptCache
from services.chat.cache_key import CacheControl
from services.chat.errors import Action, classify, to_api_error
from services.chat.limits import apply_model_limits
from services.chat.openai_format import Aggregator, completion_to_deltas
from services.chat.providers import adapter_for
from services.chat.providers.base import (
    Delta,
    Target,
    UpstreamFailure,
    UpstreamTimeout,
    UpstreamUnreachable,
    Usage,
    public_url,
)
from services.chat.request import ChatRequest, parse_request
from services.chat.tokens import text_tokens
from services.chat.workers import WorkerPool

if TYPE_CHECKING:  # plugins & tools hook
    from services.chat.extensions import Extensions

log = logging.getLogger("clawgate.chat")


@dataclass(frozen=True)
class CallOptions:
    """What the transport tells the pipeline about one call."""

    metadata: Sequence[tuple[str, str]] = ()  # forwarded to the agent registry
    token_id: str | None = None  # for per-token cache isolation
    cache_control: CacheControl = field(default_factory=CacheControl)
    deadline_s: float = 300.0


class Pipeline:
    """Shared, long-lived parts: config, the pooled HTTP session, workers, cache, agents."""

    def __init__(
        self,
        config: Config,
        session: aiohttp.ClientSession,
        *,
        pool: WorkerPool | None = None,
        cache: PromptCache | None = None,
        resolver: AgentResolver | None = None,
        extensions: Extensions | None = None,
    ) -> None:
        self.config = config
        self.settings: ChatSettings = config.chat
        self.session = session
        self.pool = pool or WorkerPool()
        self.cache = cache
        self.resolver = resolver
        self.extensions = extensions  # plugins & tools hook

    async def open(
        self, raw: Mapping[str, Any], *, stream: bool | None, call: CallOptions
    ) -> Exchange:
        """Validate and resolve a request; raises ApiError for anything the client must fix."""
        request = parse_request(raw, stream=stream)
        reference = agent_reference(request.model)
        if reference is not None:
            await self._apply_agent(request, reference, call)
        # plugins & tools hook: before_request, the agent's tools offered to the model
        prepared = await self.extensions.prepare(request, call) if self.extensions else None
        targets = self.targets_for(request.model, via_agent=reference)
        estimate = apply_model_limits(request, targets[0].model)
        if prepared is not None:  # plugins & tools hook
            return prepared.exchange(self, request, targets, estimate, call)
        return Exchange(self, request, targets, estimate, call)

    async def _apply_agent(self, request: ChatRequest, reference: str, call: CallOptions) -> None:
        if self.resolver is None:
            raise ApiError(
                503,
                "agents are not available: no agent registry is configured",
                code="agent_registry_unavailable",
            )
        agent = await self.resolver.resolve(reference, call.metadata) if reference else None
        if agent is None:
            raise not_found(
                f"The agent '{reference}' does not exist. List agents with GET /api/v1/agents.",
                "model",
                "agent_not_found",
            )
        apply_agent(request, agent)
        if agent_reference(request.model) is not None:
            raise ApiError(400, "an agent's model cannot be another agent", param="model")

    def targets_for(self, model_id: str, via_agent: str | None = None) -> list[Target]:
        """Every worker serving `model_id`; 404 naming the configured models otherwise."""
        targets = [
            Target(provider, model, worker)
            for provider, model in self.config.find_model(model_id)
            for worker in provider.workers
        ]
        if not targets:
            known = ", ".join(m.id for _, m in self.config.models()) or "(none)"
            missing = f"The model '{model_id}' does not exist on this gateway"
            if via_agent:
                missing = (
                    f"The agent '{via_agent}' uses the model '{model_id}', which does not "
                    "exist on this gateway"
                )
            raise not_found(
                f"{missing}. Configured models: {known}; agents are used as 'agent:<name>'.",
                "model",
                "model_not_found",
            )
        return targets


class Exchange:
    """One request on its way through the pipeline."""

    def __init__(
        self,
        pipeline: Pipeline,
        request: ChatRequest,
        targets: list[Target],
        prompt_estimate: int,
        call: CallOptions,
    ) -> None:
        self.pipeline = pipeline
        self.request = request
        self.targets = targets
        self.prompt_estimate = prompt_estimate
        self.call = call
        self.cache_status = "BYPASS"
        self.completion: dict[str, Any] | None = None
        loop = asyncio.get_running_loop()
        self._deadline_at = loop.time() + call.deadline_s

    @property
    def model(self) -> ModelSpec:
        return self.targets[0].model

    async def complete(self) -> dict[str, Any]:
        """The whole answer as a chat.completion object."""
        async with aclosing(self.deltas(buffered=True)) as deltas:
            async for _ in deltas:
                pass
        assert self.completion is not None
        return self.completion

    async def deltas(self, *, buffered: bool = False) -> AsyncGenerator[Delta, None]:
        """The answer: from the cache on a hit, else from a worker (then stored).

        `buffered`: the caller sends nothing before the whole answer is there (JSON
        answers), so even an answer cut off half-way can still be retried.
        """
        cache = self.pipeline.cache
        decision: CacheDecision | None = None
        if cache is not None:
            key = cache.key_for(self.request.body, self.call.token_id)
            decision = await cache.begin(
                key,
                no_cache=self.call.cache_control.no_cache,
                no_store=self.call.cache_control.no_store,
            )
            self.cache_status = decision.status
        aggregator = Aggregator()
        if decision is not None and decision.status == "HIT" and decision.completion:
            for delta in completion_to_deltas(decision.completion):
                aggregator.add(delta)
                yield delta
            self._finish(aggregator, cache_hit=True)
            return
        completion: dict[str, Any] | None = None
        try:
            async with aclosing(self._from_workers(buffered)) as upstream:
                async for delta in upstream:
                    aggregator.add(delta)
                    yield delta
            if aggregator.usage is None:  # servers before ollama 0.5.2 send no usage
                estimate = Delta(usage=self._estimated_usage(aggregator))
                aggregator.add(estimate)
                yield estimate
            completion = self._finish(aggregator, cache_hit=False)
        finally:
            if cache is not None and decision is not None:
                await cache.finish(decision, completion)

    def _finish(self, aggregator: Aggregator, *, cache_hit: bool) -> dict[str, Any]:
        usage = aggregator.usage or self._estimated_usage(aggregator)
        self.completion = aggregator.completion(self.request.requested_model, usage)
        log.info(
            "chat completion",
            extra={
                "model": self.request.model,
                "requested_model": self.request.requested_model,
                "agent_id": self.request.agent_id,
                "cache": self.cache_status,
                "finish_reason": self.completion["choices"][0]["finish_reason"],
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cost_usd": round(cost_usd(self.model.cost, usage, cache_hit=cache_hit), 8),
            },
        )
        return self.completion

    def _estimated_usage(self, aggregator: Aggregator) -> Usage:
        generated = "".join(aggregator.content) + "".join(aggregator.reasoning)
        return Usage(self.prompt_estimate, text_tokens(generated))

    async def _from_workers(self, buffered: bool) -> AsyncGenerator[Delta, None]:
        """Deltas from the best worker, retrying and failing over until the first delta
        is handed on (with `buffered`, until the whole answer is there)."""
        pipeline, settings = self.pipeline, self.pipeline.settings
        loop = asyncio.get_running_loop()
        tried: set[str] = set()
        retries = 0
        while True:
            target = pipeline.pool.pick(self.targets, avoid=tried)
            tried.add(target.key)
            started = False
            held: list[Delta] = []
            try:
                async with aclosing(self._attempt(target)) as attempt:
                    async for delta in attempt:
                        if buffered:
                            held.append(delta)
                        else:
                            started = True
                            yield delta
                for delta in held:
                    yield delta
                return
            except UpstreamFailure as failure:
                error = to_api_error(failure, target)
                if started:
                    raise error from None
                action = classify(failure)
                if isinstance(failure, UpstreamUnreachable):
                    pipeline.pool.mark_down(target, failure.message)
                log.warning(
                    "upstream attempt failed",
                    extra={
                        "worker": public_url(target.worker),
                        "model": target.model.id,
                        "error": failure.message,
                        "code": error.code,
                        "action": action.value,
                        "retries": retries,
                    },
                )
                if action is Action.FATAL:
                    raise error from None
                if pipeline.pool.untried_alive(self.targets, tried):
                    continue  # fail over at once: another worker may be fine
                if action is Action.FAILOVER or retries >= settings.max_retries:
                    raise error from None
                delay = backoff_delay(settings.retry_backoff_s, retries, error.retry_after)
                if loop.time() + delay >= self._deadline_at:
                    raise error from None
                retries += 1
                await asyncio.sleep(delay)

    async def _attempt(self, target: Target) -> AsyncGenerator[Delta, None]:
        """One call to one worker, with the first-token limit and the request deadline."""
        pipeline, settings = self.pipeline, self.pipeline.settings
        loop = asyncio.get_running_loop()
        first_token_at = loop.time() + settings.first_token_timeout_s
        got_first = False
        adapter = adapter_for(target.provider.api)
        with pipeline.pool.lease(target):
            async with aclosing(adapter.stream(pipeline.session, target, self.request)) as stream:
                while True:
                    limit = (
                        self._deadline_at if got_first else min(first_token_at, self._deadline_at)
                    )
                    timeout = asyncio.timeout_at(limit)
                    try:
                        async with timeout:
                            delta = await anext(stream)
                    except StopAsyncIteration:
                        return
                    except TimeoutError:
                        if not timeout.expired():
                            raise
                        raise self._timeout(target, got_first, first_token_at) from None
                    if not got_first:
                        got_first = True
                        pipeline.pool.mark_up(target)
                    yield delta

    def _timeout(self, target: Target, got_first: bool, first_token_at: float) -> UpstreamTimeout:
        if not got_first and first_token_at <= self._deadline_at:
            seconds = self.pipeline.settings.first_token_timeout_s
            return UpstreamTimeout(
                target.worker,
                f"No first token from {public_url(target.worker)} within {seconds:g}s.",
                first_token=True,
            )
        return UpstreamTimeout(
            target.worker,
            f"The request did not finish within its {self.call.deadline_s:g}s deadline; "
            "give it more time (gRPC deadline or the x-request-timeout header) or lower "
            "max_tokens.",
            first_token=False,
        )


def backoff_delay(base_s: float, retry: int, retry_after: float | None = None) -> float:
    """Exponential backoff (base · 2^retry) with equal jitter; at least the server's hint."""
    delay = base_s * (2.0**retry)
    jittered = delay / 2 + random.uniform(0, delay / 2)
    return max(jittered, min(retry_after or 0.0, 2 * delay))
