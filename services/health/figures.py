"""What the health report adds to the checks: service figures, last errors, probes, gauges.

- Service figures (version, uptime, per-worker load, cache counters) come from each
  service's own metrics, scraped over the internal gRPC method: no extra RPCs to keep in
  sync with what the metrics already say.
- Last errors: each component's last failure and its time, kept after it recovers.
- Liveness and readiness are decided from the latest report, never by a new check.
- The health checks' findings are exported as gauges (workers up, models, VRAM).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from google.protobuf import timestamp_pb2
from prometheus_client import Gauge
from prometheus_client.parser import text_string_to_metric_families

from clawgate.common.config import Config
from clawgate.common.services import service_of
from clawgate.health.v1 import health_service_pb2 as pb
from services.chat.providers.base import public_url
from services.health.checks import DOWN, OK


@dataclass
class ServiceFigures:
    version: str = ""
    started_at: float = 0.0
    in_flight: dict[str, float] = field(default_factory=dict)  # worker URL → requests
    queued: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, bool] = field(default_factory=dict)
    cache: dict[str, float] = field(default_factory=dict)  # event → count
    batches_active: float = 0.0
    batch_lines_running: float = 0.0
    batch_lines: dict[str, float] = field(default_factory=dict)  # outcome → count

    @classmethod
    def parse(cls, text: str) -> ServiceFigures:
        figures = cls()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "clawgate_build_info":
                    figures.version = s.labels.get("version", "")
                elif s.name == "clawgate_start_time_seconds":
                    figures.started_at = s.value
                elif s.name == "clawgate_worker_in_flight":
                    figures.in_flight[s.labels["worker"]] = s.value
                elif s.name == "clawgate_worker_queued":
                    figures.queued[s.labels["worker"]] = s.value
                elif s.name == "clawgate_worker_skipped":
                    figures.skipped[s.labels["worker"]] = s.value > 0
                elif s.name == "clawgate_cache_events_total":
                    figures.cache[s.labels["event"]] = s.value
                elif s.name == "clawgate_batches_active":
                    figures.batches_active = s.value
                elif s.name == "clawgate_batch_lines_running":
                    figures.batch_lines_running = s.value
                elif s.name == "clawgate_batch_lines_total":
                    figures.batch_lines[s.labels["state"]] = s.value
        return figures

    @classmethod
    def combine(cls, parts: Sequence[ServiceFigures]) -> ServiceFigures:
        """The figures of a service run as several processes: load and counters add up;
        the active batches (one set in Redis, which every process counts) do not."""

        def add(maps: Iterable[dict[str, float]]) -> dict[str, float]:
            total: dict[str, float] = {}
            for m in maps:
                for key, value in m.items():
                    total[key] = total.get(key, 0.0) + value
            return total

        return cls(
            version=parts[0].version if parts else "",
            started_at=min((p.started_at for p in parts if p.started_at), default=0.0),
            in_flight=add(p.in_flight for p in parts),
            queued=add(p.queued for p in parts),
            skipped={k: any(p.skipped.get(k, False) for p in parts)
                     for k in {k for p in parts for k in p.skipped}},
            cache=add(p.cache for p in parts),
            batches_active=max((p.batches_active for p in parts), default=0.0),
            batch_lines_running=sum(p.batch_lines_running for p in parts),
            batch_lines=add(p.batch_lines for p in parts),
        )  # fmt: skip


def apply_figures(report: pb.HealthReport, figures: Mapping[str, ServiceFigures | None]) -> None:
    now = time.time()
    for component in report.components:
        found = figures.get(component.name)
        if component.kind == "service" and found is not None:
            component.version = found.version
            if found.started_at:
                component.uptime_seconds = round(now - found.started_at, 1)
    found_chat = [f for name, f in figures.items() if service_of(name) == "chat" and f]
    if not found_chat:
        return
    chat = ServiceFigures.combine(found_chat)
    for component in report.components:
        if component.kind == "llm_worker":
            url = public_url(component.worker.url)
            component.worker.in_flight = int(chat.in_flight.get(url, 0))
            component.worker.queued = int(chat.queued.get(url, 0))
            component.worker.skipped = chat.skipped.get(url, False)
    report.batches.active = int(chat.batches_active)
    report.batches.running_lines = int(chat.batch_lines_running)
    for state, count in chat.batch_lines.items():
        report.batches.finished_lines[state] = int(count)
    c = chat.cache
    report.cache.CopyFrom(
        pb.CacheSummary(
            hits=int(c.get("hit", 0)),
            misses=int(c.get("miss", 0)),
            bypasses=int(c.get("bypass", 0)),
            stores=int(c.get("store", 0)),
            joins=int(c.get("join", 0)),
        )
    )


class LastErrors:
    """Each component's last failure, remembered across rounds."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, timestamp_pb2.Timestamp]] = {}

    def apply(self, report: pb.HealthReport) -> None:
        for component in report.components:
            if component.status != OK:
                at = timestamp_pb2.Timestamp()
                at.GetCurrentTime()
                self._seen[component.name] = (component.detail or component.status, at)
            if component.name in self._seen:
                error, when = self._seen[component.name]
                component.last_error = error
                component.last_error_at.CopyFrom(when)


def liveness_failures(report: pb.HealthReport) -> list[str]:
    """Every service process answers (the caller reached health through Envoy)."""
    return [
        f"{c.name}: {c.detail or c.status}"
        for c in report.components
        if c.kind == "service" and c.status == DOWN
    ]


def readiness_failures(report: pb.HealthReport, config: Config) -> list[str]:
    """The chat path can serve: a chat process serving, one worker up with a configured
    model."""
    chat = [c for c in report.components if c.kind == "service" and service_of(c.name) == "chat"]
    reasons = (
        [f"chat service: {'; '.join(f'{c.name}: {c.detail or c.status}' for c in chat)}"]
        if chat and all(c.status == DOWN for c in chat)
        else []
    )
    workers = [c for c in report.components if c.kind == "llm_worker"]
    configured = {p.id: {m.id for m in p.models} for p in config.providers}
    usable = [
        w
        for w in workers
        if w.status != DOWN
        and configured.get(w.worker.provider, set()) - set(w.worker.missing_models)
    ]
    if not workers:
        reasons.append("no LLM worker is configured")
    elif not usable:
        down = "; ".join(f"{w.name}: {w.detail or w.status}" for w in workers)
        reasons.append(f"no LLM worker is reachable with a configured model ({down})")
    return reasons


COMPONENT_UP = Gauge(
    "clawgate_component_up",
    "1 when a checked component (service, redis, worker) is up, from the health checks.",
    ["component", "kind"],
)
WORKER_LOADED = Gauge(
    "clawgate_worker_loaded_models", "Models loaded in a worker's memory.", ["worker"]
)
WORKER_PULLED = Gauge(
    "clawgate_worker_pulled_models", "Models present (pulled) on a worker.", ["worker"]
)
WORKER_VRAM = Gauge(
    "clawgate_worker_vram_used_bytes", "GPU memory used by a worker's loaded models.", ["worker"]
)


def observe_report(report: pb.HealthReport) -> None:
    for c in report.components:
        name = public_url(c.worker.url) if c.kind == "llm_worker" else c.name
        COMPONENT_UP.labels(name, c.kind).set(0.0 if c.status == DOWN else 1.0)
        if c.kind == "llm_worker":
            WORKER_LOADED.labels(name).set(len(c.worker.loaded_models))
            WORKER_PULLED.labels(name).set(len(c.worker.pulled_models))
            WORKER_VRAM.labels(name).set(c.worker.vram_used_bytes)
