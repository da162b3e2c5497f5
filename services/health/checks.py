"""One check per component: each returns a Component message and never raises."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import grpc
import redis.asyncio as redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clawgate.common.config import ProviderSpec
from clawgate.health.v1 import health_service_pb2 as pb
from services.chat.providers import adapter_for
from services.chat.providers.base import (
    UpstreamFailure,
    UpstreamHttpError,
    UpstreamUnreachable,
    public_url,
)

OK, DOWN, DEGRADED = "ok", "down", "degraded"


async def timed(
    name: str, kind: str, critical: bool, check: Callable[[pb.Component], Awaitable[None]]
) -> pb.Component:
    """Run `check` (which fills in the component) with latency and failure capture."""
    component = pb.Component(name=name, kind=kind, status=OK, critical=critical)
    started = time.perf_counter()
    try:
        await check(component)
    except TimeoutError:
        component.status, component.detail = DOWN, "timed out"
    except Exception as exc:  # a check reports failures, it never propagates them
        component.status, component.detail = DOWN, f"{type(exc).__name__}: {exc}"
    component.latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return component


def explain_down(components: list[pb.Component], reasons: dict[str, str]) -> None:
    """Add the launcher's reason (clawgate.common.supervision) to components found down."""
    for component in components:
        reason = reasons.get(component.name)
        if component.status == DOWN and reason:
            component.detail = f"{component.detail}; launcher: {reason}"


def grpc_check(
    channel: grpc.aio.Channel, service: str, timeout: float
) -> Callable[..., Awaitable[None]]:
    async def check(component: pb.Component) -> None:
        stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.aio.AioRpcError as err:
            component.status = DOWN
            component.detail = f"{err.code().name}: {err.details() or 'no answer'}"
            return
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            component.status = DOWN
        component.detail = status.lower()

    return check


def http_check(
    session: aiohttp.ClientSession, url: str, timeout: float
) -> Callable[..., Awaitable[None]]:
    """An HTTP service's own probe (`GET /healthz` answering 200)."""

    async def check(component: pb.Component) -> None:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as reply:
                component.detail = f"HTTP {reply.status}"
                if reply.status != 200:
                    component.status = DOWN
        except aiohttp.ClientConnectionError as exc:
            component.status, component.detail = DOWN, f"cannot connect: {type(exc).__name__}"

    return check


def redis_check(client: redis.Redis, timeout: float) -> Callable[..., Awaitable[None]]:
    async def check(component: pb.Component) -> None:
        async with asyncio.timeout(timeout):
            await client.ping()
            info = await client.info("persistence")
        aof = "on" if info.get("aof_enabled") else "off"
        component.detail = f"ping ok; append-only file {aof}"

    return check


def worker_check(
    session: aiohttp.ClientSession, provider: ProviderSpec, url: str, timeout: float
) -> Callable[..., Awaitable[None]]:
    """Probe one worker through its provider's adapter (the same probe `/models` uses)."""

    async def check(component: pb.Component) -> None:
        worker = component.worker
        worker.url, worker.provider = public_url(url), provider.id
        try:
            async with asyncio.timeout(timeout):
                probe = await adapter_for(provider.api).probe(session, provider, url)
        except UpstreamFailure as failure:
            component.status, component.detail = DOWN, worker_failure(provider, failure)
            return
        worker.server, worker.version = probe.server, probe.version
        worker.pulled_models.extend(probe.models)
        missing = probe.missing(m.id for m in provider.models)
        worker.missing_models.extend(missing)
        for model in probe.loaded or ():
            worker.loaded_models.append(
                pb.LoadedModel(
                    name=model.name,
                    size_bytes=model.size_bytes,
                    size_vram_bytes=model.size_vram_bytes or 0.0,
                    context_length=model.context_length,
                    expires_at=model.expires_at,
                )
            )
        worker.vram_used_bytes = probe.vram_used_bytes
        component.detail = probe.describe(missing)
        if missing:
            component.status = DEGRADED

    return check


def worker_failure(provider: ProviderSpec, failure: UpstreamFailure) -> str:
    """Why a worker cannot serve, in the words chat errors use."""
    url = public_url(failure.worker)
    if isinstance(failure, UpstreamUnreachable):
        return f"cannot connect to {url}: {failure.message}; check that the server is running"
    if isinstance(failure, UpstreamHttpError) and failure.status in (401, 403):
        return (
            f"{url} refused the provider's API key (HTTP {failure.status}); check "
            f"providers.{provider.id}.apiKey"
        )
    if isinstance(failure, UpstreamHttpError):
        return f"{url} answered HTTP {failure.status}: {failure.message}"
    return failure.message
