"""The chat service's Prometheus metrics: requests, latencies, tokens, cost, cache, workers.

Request metrics are recorded once per call by the servicer (`RequestRecord`). Cache
counters and per-worker state are read at scrape time from the objects that own them
(`PromptCache`'s counters, `WorkerPool`'s states) by a collector, so the hot path does no
extra bookkeeping for them. Labels: `model` is a configured model id (or `unknown`),
`worker` a configured worker URL: both bounded by the config.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from clawgate.common.errors import ApiError
from clawgate.common.metrics import LATENCY_BUCKETS
from services.chat.cache import PromptCache
from services.chat.workers import WorkerPool

if TYPE_CHECKING:
    from services.chat.pipeline import Exchange

log = logging.getLogger("clawgate.chat")

UNKNOWN_MODEL = "unknown"

REQUESTS = Counter(
    "clawgate_chat_requests_total",
    "Chat completion calls by method, model, HTTP-equivalent status code and cache result.",
    ["method", "model", "code", "cache", "stream"],
)
REQUEST_SECONDS = Histogram(
    "clawgate_chat_request_duration_seconds",
    "Whole chat call, from arrival to the last byte handed to the transport.",
    ["model", "stream"],
    buckets=LATENCY_BUCKETS,
)
FIRST_TOKEN_SECONDS = Histogram(
    "clawgate_chat_time_to_first_token_seconds",
    "From arrival to the first piece of the answer (from a worker or the cache).",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_SECONDS = Histogram(
    "clawgate_chat_upstream_duration_seconds",
    "Time spent waiting on LLM workers within one call (all attempts).",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
OVERHEAD_SECONDS = Histogram(
    "clawgate_chat_gateway_overhead_seconds",
    "Time of a call not spent waiting on workers: the gateway's own cost.",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
TOKENS = Counter(
    "clawgate_chat_tokens_total", "Tokens by model and kind (prompt, completion).",
    ["model", "kind"],
)  # fmt: skip
COST = Counter(
    "clawgate_chat_cost_usd_total",
    "Estimated cost from the configured prices (cacheRead price on cache hits).",
    ["model"],
)
WORKER_ERRORS = Counter(
    "clawgate_worker_errors_total",
    "Failed upstream attempts by worker and kind (unreachable, busy, oom, not_pulled, "
    "timeout, bad_response, other).",
    ["worker", "kind"],
)
WORKER_RETRIES = Counter(
    "clawgate_worker_retries_total", "Attempts that were retries of a failed one.", ["worker"]
)
FAILOVERS = Counter(
    "clawgate_worker_failovers_total",
    "Requests moved to another worker after one failed.",
    ["worker"],
)


# When the current chat call arrived (perf_counter): the overhead header is measured from it.
call_started: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "clawgate_call_started", default=None
)


def overhead_ms(upstream_s: float) -> float:
    """Milliseconds the gateway itself spent on the current call so far (not the worker)."""
    started = call_started.get()
    if started is None:
        return 0.0
    return round(max(0.0, time.perf_counter() - started - upstream_s) * 1000, 2)


@dataclass
class RequestRecord:
    """One chat call; `observed()` fills in the outcome and records every metric."""

    method: str
    started: float = field(default_factory=time.perf_counter)
    exchange: Exchange | None = None  # set once the request is valid
    code: int = 200

    def observe(self) -> None:
        total = time.perf_counter() - self.started
        ex = self.exchange
        model = ex.model.id if ex is not None else UNKNOWN_MODEL
        stream = "true" if ex is not None and ex.request.stream else "false"
        cache = ex.cache_status if ex is not None else "NONE"
        REQUESTS.labels(self.method, model, str(self.code), cache, stream).inc()
        REQUEST_SECONDS.labels(model, stream).observe(total)
        access_log(self, total)
        if ex is None:
            return
        if self.code == 200:
            if ex.first_delta_at is not None:
                FIRST_TOKEN_SECONDS.labels(model).observe(ex.first_delta_at - self.started)
            UPSTREAM_SECONDS.labels(model).observe(ex.upstream_s)
            OVERHEAD_SECONDS.labels(model).observe(max(0.0, total - ex.upstream_s))
        if ex.usage is not None:
            TOKENS.labels(model, "prompt").inc(ex.usage.prompt_tokens)
            TOKENS.labels(model, "completion").inc(ex.usage.completion_tokens)
        if ex.cost_usd:
            COST.labels(model).inc(ex.cost_usd)


def access_log(record: RequestRecord, total_s: float) -> None:
    """One line per chat call (the request id comes from the log context). Never the
    prompt or the answer."""
    if not log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, object] = {
        "method": record.method,
        "status": record.code,
        "duration_ms": round(total_s * 1000, 2),
    }
    ex = record.exchange
    if ex is not None:
        fields.update(
            model=ex.request.model,
            requested_model=ex.request.requested_model,
            agent_id=ex.request.agent_id,
            stream=ex.request.stream,
            cache=ex.cache_status,
            upstream_ms=round(ex.upstream_s * 1000, 2),
            overhead_ms=round(max(0.0, total_s - ex.upstream_s) * 1000, 2),
            cost_usd=round(ex.cost_usd, 8),
        )
        if ex.completion is not None:
            fields["finish_reason"] = ex.completion["choices"][0]["finish_reason"]
        if ex.usage is not None:
            fields.update(
                prompt_tokens=ex.usage.prompt_tokens,
                completion_tokens=ex.usage.completion_tokens,
            )
    log.info("chat request", extra=fields)


@contextmanager
def observed(method: str) -> Iterator[RequestRecord]:
    """Record one chat call's metrics whatever way it ends (status 499: client left)."""
    record = RequestRecord(method)
    call_started.set(record.started)
    try:
        yield record
    except ApiError as err:
        record.code = err.status
        raise
    except asyncio.CancelledError:
        record.code = 499
        raise
    except BaseException:
        record.code = 500
        raise
    finally:
        record.observe()


# ApiError codes of upstream failures → the bounded `kind` label of WORKER_ERRORS.
_ERROR_KINDS = {
    "upstream_unreachable": "unreachable",
    "upstream_busy": "busy",
    "rate_limit_exceeded": "busy",
    "insufficient_gpu_memory": "oom",
    "model_load_failed": "oom",
    "model_not_pulled": "not_pulled",
    "upstream_timeout": "timeout",
    "request_timeout": "timeout",
    "upstream_incomplete": "bad_response",
    "upstream_bad_response": "bad_response",
}


def error_kind(error: ApiError) -> str:
    return _ERROR_KINDS.get(error.code or "", "other")


class ChatCollector(Collector):
    """Cache counters and per-worker state, read when Prometheus scrapes."""

    def __init__(self, pool: WorkerPool, cache: PromptCache | None) -> None:
        self._pool = pool
        self._cache = cache

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        if self._cache is not None:
            events = CounterMetricFamily(
                "clawgate_cache_events",
                "Prompt-cache outcomes: hit, miss, bypass, store, and single-flight joins.",
                labels=["event"],
            )
            for event, value in self._cache.counts().items():
                events.add_metric([event], value)
            yield events
        in_flight = GaugeMetricFamily(
            "clawgate_worker_in_flight", "Requests a worker is answering now.", labels=["worker"]
        )
        skipped = GaugeMetricFamily(
            "clawgate_worker_skipped",
            "1 while a worker is marked down and skipped by the load balancer.",
            labels=["worker"],
        )
        queued = GaugeMetricFamily(
            "clawgate_worker_queued",
            "Requests waiting in the gateway's queue for a slot on a worker.",
            labels=["worker"],
        )
        batch = GaugeMetricFamily(
            "clawgate_worker_batch_in_flight",
            "Batch lines a worker is answering now (background work, in in_flight too).",
            labels=["worker"],
        )
        busy: dict[str, int] = {}
        batch_busy: dict[str, int] = {}
        waiting: dict[str, int] = {}
        down: dict[str, bool] = {}
        for state in self._pool.snapshot():  # providers may share a worker URL: sum them
            label = state["url"]
            busy[label] = busy.get(label, 0) + state["in_flight"]
            batch_busy[label] = batch_busy.get(label, 0) + state["batch_in_flight"]
            waiting[label] = waiting.get(label, 0) + state["queued"]
            down[label] = down.get(label, False) or state["down"]
        for label, count in busy.items():
            in_flight.add_metric([label], count)
            queued.add_metric([label], waiting[label])
            batch.add_metric([label], batch_busy[label])
            skipped.add_metric([label], 1.0 if down[label] else 0.0)
        yield in_flight
        yield queued
        yield batch
        yield skipped


def register(pool: WorkerPool, cache: PromptCache | None) -> None:
    REGISTRY.register(ChatCollector(pool, cache))
