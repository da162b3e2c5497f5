"""One check per component: each returns a Component message and never raises."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import grpc
import redis.asyncio as redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clawgate.common.config import API_OPENAI, ProviderSpec
from clawgate.health.v1 import health_service_pb2 as pb

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


def ollama_root(provider: ProviderSpec, url: str) -> str:
    """The server root for ollama's native API (`…/v1` is the OpenAI layer)."""
    if provider.api == API_OPENAI and url.endswith("/v1"):
        return url[: -len("/v1")]
    return url


def _same_model(a: str, b: str) -> bool:
    # ollama names carry a tag; `llama3.2` means `llama3.2:latest`.
    def norm(name: str) -> str:
        return name if ":" in name else f"{name}:latest"

    return norm(a) == norm(b)


def worker_check(
    session: aiohttp.ClientSession, provider: ProviderSpec, url: str, timeout: float
) -> Callable[..., Awaitable[None]]:
    root = ollama_root(provider, url)
    client_timeout = aiohttp.ClientTimeout(total=timeout)

    async def get_json(path: str) -> object | None:
        async with session.get(root + path, timeout=client_timeout) as reply:
            if reply.status == 404:
                return None  # not an ollama server (or an old one)
            reply.raise_for_status()
            data: object = await reply.json(content_type=None)
            return data

    async def check(component: pb.Component) -> None:
        worker = component.worker
        worker.url, worker.provider = url, provider.id
        try:
            version, tags, ps = await asyncio.gather(
                get_json("/api/version"), get_json("/api/tags"), get_json("/api/ps")
            )
        except aiohttp.ClientConnectionError as exc:
            component.status = DOWN
            component.detail = (
                f"cannot connect to {url}: {exc.__class__.__name__}; is ollama running?"
            )
            return
        if isinstance(version, dict):
            worker.version = str(version.get("version", ""))
        pulled: list[str] = []
        if isinstance(tags, dict):
            pulled = [str(m.get("model") or m.get("name")) for m in tags.get("models") or []]
        else:  # generic OpenAI-compatible server: list its models instead
            async with session.get(url + "/models", timeout=client_timeout) as reply:
                reply.raise_for_status()
                data = await reply.json(content_type=None)
            pulled = [str(m.get("id")) for m in (data.get("data") or [])]
        worker.pulled_models.extend(pulled)
        for model in provider.models:
            if not any(_same_model(model.id, p) for p in pulled):
                worker.missing_models.append(model.id)
        if isinstance(ps, dict):
            for m in ps.get("models") or []:
                worker.loaded_models.append(
                    pb.LoadedModel(
                        name=str(m.get("model") or m.get("name")),
                        size_bytes=float(m.get("size") or 0),
                        size_vram_bytes=float(m.get("size_vram") or 0),
                        context_length=int(m.get("context_length") or 0),
                        expires_at=str(m.get("expires_at") or ""),
                    )
                )
        worker.vram_used_bytes = sum(m.size_vram_bytes for m in worker.loaded_models)
        loaded = ", ".join(
            f"{m.name} ({m.size_vram_bytes / 2**30:.1f} GiB VRAM)" for m in worker.loaded_models
        )
        component.detail = f"reachable; loaded: {loaded or 'none'}"
        if worker.missing_models:
            component.status = DEGRADED
            pulls = "; ".join(f"ollama pull {m}" for m in worker.missing_models)
            component.detail += f"; models not pulled: {pulls}"

    return check
