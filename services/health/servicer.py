"""HealthService: one report of every part of the gateway (R3, R12)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

import aiohttp
import grpc
import redis.asyncio as redis
from google.api import httpbody_pb2

from clawgate import __version__
from clawgate.common.auth import Authenticator, AuthResult, auth_error
from clawgate.common.config import Config
from clawgate.common.errors import HTTP_STATUS_KEY
from clawgate.common.metrics import exposition
from clawgate.common.services import BY_NAME, SERVICES, Protocol, service_of
from clawgate.common.supervision import down_reasons
from clawgate.health.v1 import health_service_pb2 as pb
from clawgate.health.v1 import health_service_pb2_grpc as pb_grpc
from services.chat.providers.base import public_url
from services.health import checks
from services.health.figures import (
    LastErrors,
    ServiceFigures,
    apply_figures,
    liveness_failures,
    observe_report,
    readiness_failures,
)
from services.health.gather import CONTENT_TYPE, gather, scrape_service

log = logging.getLogger("clawgate.health")

CHECK_TIMEOUT_S = 2.0
# Checks run in the background this often; every call reads the latest round, so a call
# never waits on a dead worker (except for the very first round after start).
CHECK_INTERVAL_S = 1.0
RECHECK_INTERVAL_S = 0.25
RECHECK_WINDOW_S = 10.0  # how long after a change of status the faster pace lasts
HINT = "send `Authorization: Bearer <token>` for every component's state"


class HealthServicer(pb_grpc.HealthServiceServicer):
    def __init__(self, config: Config, auth: Authenticator) -> None:
        self._config = config
        self._auth = auth
        # One channel per process: a service run as several (chat) is checked and scraped
        # process by process (`chat`, `chat:2`, …).
        self._channels = {
            process: (grpc.aio.insecure_channel(addr), s.primary)
            for s in SERVICES
            if s.probed_by_health and s.protocol is Protocol.GRPC
            for process, addr in config.services.processes(s.name).items()
        }
        self._http_probes = {
            s.name: s.health_url(config.services[s.name])
            for s in SERVICES
            if s.probed_by_health and s.protocol is Protocol.HTTP
        }
        self._redis = redis.from_url(config.redis_url, socket_timeout=CHECK_TIMEOUT_S)
        self._session: aiohttp.ClientSession | None = None
        self._latest: pb.HealthReport | None = None
        self._first_round = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_errors = LastErrors()
        admin = os.environ.get("CLAWGATE_ENVOY_ADMIN_URL") or (
            f"http://127.0.0.1:{config.gateway.admin_port}"
        )
        # usedonly: stats that ever changed, a fraction of the full set.
        self._envoy_stats_url = admin.rstrip("/") + "/stats/prometheus?usedonly"

    def start(self) -> None:
        """Start the background checks (from inside the running event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._check_forever())

    async def _check_forever(self) -> None:
        changed_at = time.monotonic()  # when the overall status last changed
        while True:
            try:
                report = await self._run_checks()
                await self._add_service_figures(report)
                self._last_errors.apply(report)
                observe_report(report)
                if self._latest is None or self._latest.status != report.status:
                    changed_at = time.monotonic()
                self._latest = report
                self._first_round.set()
            except Exception:
                log.exception("health round failed")
            # Shortly after a change, while something is wrong, look again sooner: a part
            # that was starting (or restarting) is reported up within a fraction of a
            # second. A steady state (a model never pulled) is checked at the usual pace.
            ok = self._latest is not None and self._latest.status == checks.OK
            settling = time.monotonic() - changed_at < RECHECK_WINDOW_S
            await asyncio.sleep(RECHECK_INTERVAL_S if settling and not ok else CHECK_INTERVAL_S)

    async def _add_service_figures(self, report: pb.HealthReport) -> None:
        """Versions, uptimes, worker load and cache counters, from the services' metrics."""
        scraped = await asyncio.gather(
            *(self._scrape(name) for name in self._channels), return_exceptions=False
        )
        figures = dict(zip(self._channels, scraped, strict=True))
        figures["health"] = ServiceFigures.parse(exposition().decode())
        apply_figures(report, figures)

    async def _scrape(self, name: str) -> ServiceFigures | None:
        try:
            text = await scrape_service(self._channels[name][0], CHECK_TIMEOUT_S)
        except (grpc.aio.AioRpcError, TimeoutError, UnicodeDecodeError):
            return None
        return ServiceFigures.parse(text)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
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
                BY_NAME[service_of(name)].critical,
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
            name = f"{provider.id}:{public_url(url)}"
            jobs.append(checks.timed(name, "llm_worker", True, check))
        components = await asyncio.gather(*jobs)
        launcher_notes = await asyncio.to_thread(down_reasons, self._config.state_dir)
        checks.explain_down(components, launcher_notes)
        report = pb.HealthReport(version=__version__, components=components)
        report.checked_at.GetCurrentTime()
        report.status = overall_status(components)
        return report

    async def report(self) -> pb.HealthReport:
        self.start()
        await self._first_round.wait()
        assert self._latest is not None
        return self._latest

    # -- probes for orchestrators (no token) -----------------------------------------------
    async def CheckLiveness(
        self, request: pb.CheckLivenessRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ProbeResult:
        return await _probe(context, liveness_failures(await self.report()))

    async def CheckReadiness(
        self, request: pb.CheckReadinessRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ProbeResult:
        return await _probe(context, readiness_failures(await self.report(), self._config))

    # -- metrics ---------------------------------------------------------------------------
    async def GetMetrics(
        self, request: pb.GetMetricsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> httpbody_pb2.HttpBody:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        channels = {name: channel for name, (channel, _) in self._channels.items()}
        data = await gather(
            channels, self._session, self._envoy_stats_url, "health", CHECK_TIMEOUT_S
        )
        return httpbody_pb2.HttpBody(content_type=CONTENT_TYPE, data=data)

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


async def _probe(context: grpc.aio.ServicerContext[Any, Any], reasons: list[str]) -> pb.ProbeResult:
    if reasons:
        await context.send_initial_metadata(((HTTP_STATUS_KEY, "503"),))
        return pb.ProbeResult(status="fail", reasons=reasons)
    return pb.ProbeResult(status="ok")


def overall_status(components: list[pb.Component]) -> str:
    """`down` when chat (every chat process) or every LLM worker is down; `degraded` when
    anything else is (one of several chat processes, too)."""
    workers = [c for c in components if c.kind == "llm_worker"]
    chat = [c for c in components if c.kind == "service" and service_of(c.name) == "chat"]
    chat_down = bool(chat) and all(c.status == checks.DOWN for c in chat)
    if chat_down or (workers and all(w.status == checks.DOWN for w in workers)):
        return checks.DOWN
    if any(c.status != checks.OK for c in components):
        return checks.DEGRADED
    return checks.OK
