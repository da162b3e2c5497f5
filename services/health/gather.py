"""The gateway's one scrape: every service's metrics and Envoy's, merged with a label.

Each service process serves its metrics over the internal `Scrape` gRPC method (see
clawgate/common/server.py); Envoy serves `/stats/prometheus` on its admin port. Families
are merged by name and every sample gets `clawgate_service="<name>"`, so one family from
several processes (e.g. `process_cpu_seconds_total`) stays one valid family.
`clawgate_scrape_up{clawgate_service}` says which sources answered. A service run as
several processes (chat) is scraped process by process; their samples carry the service
label and `clawgate_process="chat:2"` as well (sum them by service for the whole).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Iterator, Mapping

import aiohttp
import grpc
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from clawgate.common.server import SCRAPE_METHOD
from clawgate.common.services import service_of

log = logging.getLogger("clawgate.health.metrics")

SERVICE_LABEL = "clawgate_service"
PROCESS_LABEL = "clawgate_process"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _raw(data: bytes) -> bytes:
    return data


async def scrape_service(channel: grpc.aio.Channel, timeout_s: float) -> str:
    call = channel.unary_unary(SCRAPE_METHOD, _raw, _raw)  # bytes in, bytes out
    data: bytes = await call(b"", timeout=timeout_s)
    return data.decode("utf-8")


async def scrape_http(session: aiohttp.ClientSession, url: str, timeout_s: float) -> str:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as reply:
        reply.raise_for_status()
        return await reply.text()


class _Merged:
    """A registry-like object (what generate_latest needs: collect())."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def merge(sources: Mapping[str, str | None]) -> bytes:
    """Merge exposition texts by source name (None: the source did not answer). A source
    is a service, or a process of a service run as several (`chat:2`, `chat` for the first:
    see `source_labels`)."""
    families: dict[str, Metric] = {}
    up = Metric("clawgate_scrape_up", "1 when the source answered the gateway's scrape.", "gauge")
    for source, text in sources.items():
        own = source_labels(source, sources)
        up.samples.append(Sample("clawgate_scrape_up", own, float(bool(text))))
        if not text:
            continue
        try:
            parsed = list(text_string_to_metric_families(text))
        except ValueError:
            log.warning("unparsable metrics", extra={"source": source})
            continue
        for family in parsed:
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            elif merged.type != family.type:
                continue  # same name, another type: keep the first source's
            for s in family.samples:
                labels = {**s.labels, **own}
                merged.samples.append(Sample(s.name, labels, s.value, s.timestamp, s.exemplar))
    return generate_latest(_Merged([*families.values(), up]))  # type: ignore[arg-type]


def source_labels(source: str, sources: Iterable[str]) -> dict[str, str]:
    """The labels of a source's samples: its service, and its process when the service
    runs as several processes (so the samples of each stay apart)."""
    service = service_of(source)
    several = sum(service_of(other) == service for other in sources) > 1
    return {SERVICE_LABEL: service, **({PROCESS_LABEL: source} if several else {})}


async def gather(
    channels: Mapping[str, grpc.aio.Channel],
    session: aiohttp.ClientSession,
    envoy_stats_url: str | None,
    own_name: str,
    timeout_s: float,
) -> bytes:
    """Scrape every source at once; a source that fails is reported, never fatal."""

    async def safe(job: Awaitable[str]) -> str | None:
        try:
            return await job
        except Exception as exc:
            log.info("scrape failed", extra={"error": type(exc).__name__})
            return None

    names = list(channels)
    jobs = [safe(scrape_service(channels[n], timeout_s)) for n in names]
    if envoy_stats_url:
        names.append("envoy")
        jobs.append(safe(scrape_http(session, envoy_stats_url, timeout_s)))
    texts = await asyncio.gather(*jobs)
    sources: dict[str, str | None] = {own_name: generate_latest(REGISTRY).decode()}
    sources.update(zip(names, texts, strict=True))
    return merge(sources)
