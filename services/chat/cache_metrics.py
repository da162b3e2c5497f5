"""Prometheus metrics of the prompt cache's Redis operations (recorded in cache._call)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from clawgate.common.metrics import LATENCY_BUCKETS

REDIS_ERRORS = Counter(
    "clawgate_cache_redis_errors_total", "Prompt-cache Redis operations that failed or timed out."
)
REDIS_SECONDS = Histogram(
    "clawgate_cache_redis_operation_seconds",
    "Duration of prompt-cache Redis operations.",
    buckets=LATENCY_BUCKETS,
)
