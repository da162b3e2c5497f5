"""HealthService: one report of every part of the gateway (R3, R12)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import grpc
import redis.asyncio as redis

from clawgate import __version__
from clawgate.common.auth import Authenticator, AuthResult, auth_error
from clawgate.common.config import Config
from clawgate.common.errors import HTTP_STATUS_KEY
from clawgate.common.services import BY_NAME, SERVICES, Protocol
from clawgate.health.v1 import health_service_pb2 as pb
from clawgate.health.v1 import health_service_pb2_grpc as pb_grpc
from services.health import checks

CHECK_TIMEOUT_S = 2.0
# Probes (load balancers, Envoy, scripts) may call often; one round of checks serves
# every caller within this window.
REPORT_TTL_S = 1.0
HINT = "send `Authorization: Bearer <token>` for every component's state"


class HealthServicer(pb_grpc.HealthServiceServicer):
    def __init__(self, config: Config, auth: Authenticator) -> None:
        self._config = config
        self._auth = auth
        self._channels = {
            s.name: (grpc.aio.insecure_channel(config.services[s.name]), s.primary)
            for s in SERVICES
            if s.probed_by_health and s.protocol is Protocol.GRPC
        }
        self._http_probes = {
            s.name: s.health_url(config.services[s.name])
            for s in SERVICES
            if s.probed_by_health and s.protocol is Protocol.HTTP
        }
        self._redis = redis.from_url(config.redis_url, socket_timeout=CHECK_TIMEOUT_S)
        self._session: aiohttp.ClientSession | None = None
        self._cached: tuple[float, pb.HealthReport] | None = None
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        for channel, _ in self._channels.values():
            await channel.close(None)
        await self._redis.aclose()
        if self._session is not None:
            await self._session.close()

    async def _run_checks(self) -> pb.HealthReport:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        jobs = [
            checks.timed(
                name,
                "service",
                BY_NAME[name].critical,
                checks.grpc_check(ch, svc, CHECK_TIMEOUT_S),
            )
            for name, (ch, svc) in self._channels.items()
        ]
        jobs += [
            checks.timed(
                name,
                "service",
                BY_NAME[name].critical,
                checks.http_check(self._session, url, CHECK_TIMEOUT_S),
            )
            for name, url in self._http_probes.items()
        ]
        jobs.append(
            checks.timed("redis", "redis", False, checks.redis_check(self._redis, CHECK_TIMEOUT_S))
        )
        for provider, url in self._config.worker_urls():
            check = checks.worker_check(self._session, provider, url, CHECK_TIMEOUT_S)
            jobs.append(checks.timed(f"{provider.id}:{url}", "llm_worker", True, check))
        components = await asyncio.gather(*jobs)
        report = pb.HealthReport(version=__version__, components=components)
        report.checked_at.GetCurrentTime()
        report.status = overall_status(components)
        return report

    async def report(self) -> pb.HealthReport:
        async with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > REPORT_TTL_S:
                self._cached = (now, await self._run_checks())
            return self._cached[1]

    async def GetHealth(
        self, request: pb.GetHealthRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.HealthReport:
        result = self._auth.check_metadata(context.invocation_metadata() or ())
        if result is AuthResult.MISMATCH:
            raise auth_error(result)
        full = await self.report()
        if full.status == checks.DOWN:
            # REST callers (load balancers) get 503; the body still says what is down.
            await context.send_initial_metadata(((HTTP_STATUS_KEY, "503"),))
        if result is AuthResult.OK:
            return full
        summary = pb.HealthReport(status=full.status, version=full.version, hint=HINT)
        summary.checked_at.CopyFrom(full.checked_at)
        return summary


def overall_status(components: list[pb.Component]) -> str:
    """`down` when chat or every LLM worker is down; `degraded` when anything else is."""
    workers = [c for c in components if c.kind == "llm_worker"]
    chat_down = any(c.name == "chat" and c.status == checks.DOWN for c in components)
    if chat_down or (workers and all(w.status == checks.DOWN for w in workers)):
        return checks.DOWN
    if any(c.status != checks.OK for c in components):
        return checks.DEGRADED
    return checks.OK
