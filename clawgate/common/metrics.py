"""Prometheus metrics every service shares: its own /metrics port, build info, gRPC calls.

Each process serves the default prometheus_client registry over HTTP on its metrics
address (`CLAWGATE_<NAME>_METRICS_ADDR`; the exporter runs in its own thread, off the event
loop). Prometheus scrapes those addresses directly when services have replicas; the
gateway's `GET /metrics` (health service) gathers one copy of each for a single scrape.

Label values are always bounded: method names come from the protos, codes from
grpc.StatusCode, models from the config, workers from the config. Never a prompt, a
request id, a token or a raw path.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import (
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from clawgate import __version__

log = logging.getLogger("clawgate.metrics")

# Latency buckets from sub-millisecond gateway work to multi-minute generations.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip

BUILD_INFO = Gauge(
    "clawgate_build_info", "Always 1; labels say which service and version runs.",
    ["service", "version"],
)  # fmt: skip
STARTED_AT = Gauge("clawgate_start_time_seconds", "When this service process started (Unix).")
GRPC_CALLS = Counter(
    "clawgate_grpc_server_handled_total",
    "gRPC calls handled by this service, by method and status code.",
    ["method", "code"],
)
GRPC_SECONDS = Histogram(
    "clawgate_grpc_server_handling_seconds",
    "Time from the call's start to its end, by method.",
    ["method"],
    buckets=LATENCY_BUCKETS,
)


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def start(service: str, addr: str | None) -> None:
    """Record build info and serve /metrics on `addr` (`host:port`), when one is given."""
    BUILD_INFO.labels(service, __version__).set(1)
    STARTED_AT.set(time.time())
    if not addr:
        return
    host, port = split_addr(addr)
    start_http_server(port, addr=host)
    log.info("metrics served", extra={"address": addr})


def observe_call(method: str, code: str, seconds: float) -> None:
    GRPC_CALLS.labels(method, code).inc()
    GRPC_SECONDS.labels(method).observe(seconds)


def exposition() -> bytes:
    """This process's metrics in the text exposition format."""
    return generate_latest(REGISTRY)
