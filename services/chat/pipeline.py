"""One pipeline for every chat method: validate → agent → limits → cache → upstream.

`Pipeline.open()` does all checks that can fail before anything is sent (so errors keep
their HTTP status) and returns an `Exchange`; `Exchange.deltas()` produces the answer as
upstream-neutral deltas, from the cache or from a worker. The servicer only renders them
(JSON object, SSE frames, typed messages).

Upstream calls go to the best worker of the pool (free slot, shortest queue; see
workers.py), through its bounded queue. Retryable failures are retried with exponential
backoff and jitter, failing over to other workers, but only until the first delta has been
handed on: after that the client already has part of the answer and a retry could
duplicate it. Limits per attempt: the first token (per model, growing with the prompt),
silence between chunks, the answer's size (from max_tokens: at the cap the upstream is
closed and the answer ends with finish_reason "length") and the request deadline.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

from clawgate.common.config import ChatSettings, Config, ModelSpec
from clawgate.common.errors import ApiError, not_found, quote
from services.chat.accounting import cost_usd
from services.chat.agent_resolver import AgentResolver
from services.chat.agents import agent_reference, apply_agent
from services.chat.cache import CacheDecision, PromptCache
from services.chat.cache_key import CacheControl
from services.chat.errors import SMALLER_ADVICE, Action, classify, to_api_error
from services.chat.limits import apply_model_limits
from services.chat.metrics import FAILOVERS, WORKER_ERRORS, WORKER_RETRIES, error_kind
from services.chat.openai_format import Aggregator, completion_to_deltas
from services.chat.providers import adapter_for
from services.chat.providers.base import (
    AnswerLimitReached,
    Delta,
    ReadLimits,
    Target,
    UpstreamBadResponse,
    UpstreamCut,
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
    # Batch work: lowest priority in the worker queues (see workers.py).
    background: bool = False


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
        self.pool = pool or WorkerPool(config.chat)
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
                f"The agent {quote(reference)} does not exist. "
                "List agents with GET /api/v1/agents.",
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
            missing = f"The model {quote(model_id)} does not exist on this gateway"
            if via_agent:
                missing = (
                    f"The agent {quote(via_agent)} uses the model {quote(model_id)}, "
                    "which does not exist on this gateway"
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
        self.usage: Usage | None = None
        self.cost_usd = 0.0
        # Seconds spent waiting on workers (all attempts): the rest is gateway overhead.
        self.upstream_s = 0.0
        self.first_delta_at: float | None = None  # perf_counter() of the answer's start
        self._waiting_since: float | None = None  # set while waiting on a worker
        # Set once a worker answered 200: streams then send their headers (and keep-alives).
        self.accepted = asyncio.Event()
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
                max_wait_s=self._deadline_at - asyncio.get_running_loop().time(),
            )
            self.cache_status = decision.status
        aggregator = Aggregator()
        if decision is not None and decision.status == "HIT" and decision.completion:
            for delta in completion_to_deltas(decision.completion):
                aggregator.add(delta)
                self._started()
                yield delta
            self._finish(aggregator, cache_hit=True)
            return
        completion: dict[str, Any] | None = None
        try:
            async with aclosing(self._from_workers(buffered)) as upstream:
                while True:
                    self._waiting_since = waited = time.perf_counter()
                    try:
                        batch = await anext(upstream)
                    except StopAsyncIteration:
                        break
                    finally:
                        self._waiting_since = None
                        self.upstream_s += time.perf_counter() - waited
                    for delta in batch:
                        aggregator.add(delta)
                        self._started()
                        yield delta
            if aggregator.usage is None:  # servers before ollama 0.5.2 send no usage
                estimate = Delta(usage=self._estimated_usage(aggregator))
                aggregator.add(estimate)
                yield estimate
            completion = self._finish(aggregator, cache_hit=False)
        finally:
            if cache is not None and decision is not None:
                await cache.finish(decision, completion, wait=False)

    def upstream_elapsed(self) -> float:
        """Seconds spent waiting on workers so far, including a wait in progress."""
        if self._waiting_since is None:
            return self.upstream_s
        return self.upstream_s + time.perf_counter() - self._waiting_since

    def _started(self) -> None:
        if self.first_delta_at is None:
            self.first_delta_at = time.perf_counter()

    def _finish(self, aggregator: Aggregator, *, cache_hit: bool) -> dict[str, Any]:
        usage = aggregator.usage or self._estimated_usage(aggregator)
        self.usage = usage
        self.cost_usd = cost_usd(self.model.cost, usage, cache_hit=cache_hit)
        self.completion = aggregator.completion(self.request.requested_model, usage)
        return self.completion

    def _estimated_usage(self, aggregator: Aggregator) -> Usage:
        generated = "".join(aggregator.content) + "".join(aggregator.reasoning)
        return Usage(self.prompt_estimate, text_tokens(generated))

    async def _from_workers(self, buffered: bool) -> AsyncGenerator[list[Delta], None]:
        """Deltas from the best worker, retrying and failing over until the first delta
        is handed on (with `buffered`, until the whole answer is there).

        A worker that gave no first token in time is not asked again for this request
        (it is busy or stuck: asking again only queues behind its own work)."""
        pipeline, settings = self.pipeline, self.pipeline.settings
        loop = asyncio.get_running_loop()
        tried: set[str] = set()
        silent: list[Target] = []  # no first token in time
        retries = 0
        while True:
            candidates = [t for t in self.targets if t not in silent]
            target = pipeline.pool.pick(candidates, avoid=tried)
            tried.add(target.key)
            started = False
            held: list[Delta] = []
            try:
                async with aclosing(self._attempt(target)) as attempt:
                    async for batch in attempt:
                        if buffered:
                            held += batch
                        else:
                            started = True
                            yield batch
                if held:
                    yield held
                return
            except UpstreamFailure as failure:
                error = to_api_error(failure, target)
                action = classify(failure)
                worker = public_url(target.worker)
                WORKER_ERRORS.labels(worker, error_kind(error)).inc()
                if isinstance(failure, UpstreamUnreachable):
                    pipeline.pool.mark_down(target, failure.message)
                elif worker_fault(failure):
                    pipeline.pool.record_failure(target, failure.message)
                if isinstance(failure, UpstreamTimeout) and failure.first_token:
                    silent.append(target)
                    error = self._no_first_token(silent)
                if started:
                    raise error from None
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
                if action is Action.FATAL or len(silent) == len(self.targets):
                    raise error from None
                if loop.time() >= self._deadline_at:
                    raise error from None
                if pipeline.pool.untried_alive(self.targets, tried):
                    FAILOVERS.labels(worker).inc()
                    continue  # fail over at once: another worker may be fine
                if action is Action.FAILOVER or retries >= settings.max_retries:
                    raise error from None
                delay = backoff_delay(settings.retry_backoff_s, retries, error.retry_after)
                if loop.time() + delay >= self._deadline_at:
                    raise error from None
                retries += 1
                WORKER_RETRIES.labels(worker).inc()
                await asyncio.sleep(delay)

    def _no_first_token(self, silent: list[Target]) -> ApiError:
        workers = ", ".join(public_url(t.worker) for t in silent)
        untried = len(self.targets) - len(silent)
        loop = asyncio.get_running_loop()
        why = (
            f"before the request's {self.call.deadline_s:g}s deadline"
            if loop.time() >= self._deadline_at
            else "within the first-token limit"
        )
        return ApiError(
            504,
            f"No first token from any worker {why} (tried: {workers}"
            + (f"; {untried} more not tried in time" if untried else "")
            + "). The workers may be busy, stuck or still loading the model; retry later, "
            f"or {SMALLER_ADVICE}.",
            code="upstream_timeout",
        )

    def first_token_limit_s(self, model: ModelSpec) -> float:
        """The model's own limit, else the default grown with the prompt's size."""
        if model.first_token_timeout_s is not None:
            return model.first_token_timeout_s
        settings = self.pipeline.settings
        per_1k = settings.first_token_per_1k_prompt_s * self.prompt_estimate / 1000
        return settings.first_token_timeout_s + per_1k

    def answer_byte_cap(self) -> int:
        """What one answer's text may take: from max_tokens, at most max_answer_bytes."""
        settings = self.pipeline.settings
        max_tokens = int(self.request.body.get("max_tokens") or self.model.max_tokens)
        by_tokens = max_tokens * settings.answer_bytes_per_token + 4096
        return max(1, min(by_tokens, settings.max_answer_bytes))

    async def _attempt(self, target: Target) -> AsyncGenerator[list[Delta], None]:
        """One call to one worker: a slot in its queue, then the first-token limit, the
        idle limit between chunks, the answer's byte cap and the request deadline.
        Deltas come in batches of what arrived together (one limit check per batch)."""
        pipeline, settings = self.pipeline, self.pipeline.settings
        loop = asyncio.get_running_loop()
        text_cap = self.answer_byte_cap()
        limits = ReadLimits(
            max_line_bytes=settings.max_line_bytes,
            # Raw bytes carry JSON framing around each token: far more than the text.
            max_total_bytes=16 * text_cap + (1 << 20),
            on_accept=self.accepted.set,
        )
        adapter = adapter_for(target.provider.api)
        async with pipeline.pool.slot(
            target, max_wait_s=self._deadline_at - loop.time(), background=self.call.background
        ):
            first_limit_s = self.first_token_limit_s(target.model)
            first_token_at = loop.time() + first_limit_s
            got_first = False
            text_bytes = 0
            stream = adapter.stream(pipeline.session, target, self.request, limits)
            async with aclosing(stream):
                while True:
                    if got_first:
                        limit = min(loop.time() + settings.idle_timeout_s, self._deadline_at)
                    else:
                        limit = min(first_token_at, self._deadline_at)
                    timeout = asyncio.timeout_at(limit)
                    try:
                        async with timeout:
                            batch = await anext(stream)
                    except StopAsyncIteration:
                        return
                    except AnswerLimitReached:
                        yield [self._cut_at_limit(target, "raw bytes")]
                        return
                    except TimeoutError:
                        if not timeout.expired():
                            raise
                        raise self._timeout(target, got_first, first_limit_s, limit) from None
                    if not got_first:
                        got_first = True
                        pipeline.pool.mark_up(target)
                    for i, delta in enumerate(batch):
                        text_bytes += delta_bytes(delta)
                        if text_bytes > text_cap:
                            yield [
                                *batch[:i],
                                self._cut_at_limit(target, f"{text_cap} bytes of text"),
                            ]
                            return  # closing the stream closes the connection to the worker
                    yield batch

    def _cut_at_limit(self, target: Target, what: str) -> Delta:
        log.warning(
            "answer cut at its size limit",
            extra={"worker": public_url(target.worker), "model": target.model.id, "limit": what},
        )
        return Delta(finish_reason="length")

    def _timeout(
        self, target: Target, got_first: bool, first_limit_s: float, limit: float
    ) -> UpstreamTimeout:
        worker = public_url(target.worker)
        if limit < self._deadline_at and got_first:
            seconds = self.pipeline.settings.idle_timeout_s
            return UpstreamTimeout(
                target.worker,
                f"{worker} sent nothing for {seconds:g}s in the middle of the answer.",
                first_token=False,
                idle=True,
            )
        if not got_first:
            return UpstreamTimeout(
                target.worker,
                f"No first token from {worker} within {first_limit_s:g}s.",
                first_token=True,
            )
        return UpstreamTimeout(
            target.worker,
            f"The request did not finish within its {self.call.deadline_s:g}s deadline; "
            "give it more time (gRPC deadline or the x-request-timeout header) or lower "
            "max_tokens.",
            first_token=False,
        )


def worker_fault(failure: UpstreamFailure) -> bool:
    """Whether a failure says the worker is unwell (counts toward its ejection)."""
    if isinstance(failure, UpstreamTimeout):
        return failure.first_token or failure.idle
    return isinstance(failure, UpstreamBadResponse | UpstreamCut)


def delta_bytes(delta: Delta) -> int:
    """Text a delta adds to the answer (what the aggregated copy and the cache hold)."""
    size = len(delta.content.encode()) + len(delta.reasoning.encode())
    for call in delta.tool_calls:
        function = call.get("function") or {}
        size += len(str(function.get("arguments") or "")) + len(str(function.get("name") or ""))
    return size + 64 * len(delta.logprobs)


def backoff_delay(base_s: float, retry: int, retry_after: float | None = None) -> float:
    """Exponential backoff (base · 2^retry) with equal jitter; at least the server's hint."""
    delay = base_s * (2.0**retry)
    jittered = delay / 2 + random.uniform(0, delay / 2)
    return max(jittered, min(retry_after or 0.0, 2 * delay))
