"""Health and metrics with several chat processes: each is its own component and source,
one down degrades the gateway (all down: down), and their figures add up."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from clawgate.common.config import Config
from clawgate.health.v1 import health_service_pb2 as pb
from services.health.checks import DEGRADED, DOWN, OK
from services.health.figures import ServiceFigures, apply_figures, readiness_failures
from services.health.gather import merge
from services.health.servicer import overall_status


def _service(name: str, status: str) -> pb.Component:
    return pb.Component(name=name, kind="service", status=status, critical=True)


def test_one_chat_process_down_degrades_every_one_down_is_down() -> None:
    assert overall_status([_service("chat", OK), _service("chat:2", OK)]) == OK
    one_down = [_service("chat", OK), _service("chat:2", DOWN)]
    assert overall_status(one_down) == DEGRADED
    report = pb.HealthReport(components=one_down)
    assert not any("chat service" in r for r in readiness_failures(report, Config()))
    all_down = [_service("chat", DOWN), _service("chat:2", DOWN)]
    assert overall_status(all_down) == DOWN
    reasons = readiness_failures(pb.HealthReport(components=all_down), Config())
    assert any(r.startswith("chat service: chat: down; chat:2: down") for r in reasons)


def test_metrics_of_each_chat_process_keep_their_own_process_label() -> None:
    text = "# TYPE x_total counter\nx_total 2.0\n"
    merged = merge({"health": text, "chat": text, "chat:2": "# TYPE x_total counter\nx_total 3.0\n",
                    "agents": None}).decode()  # fmt: skip
    samples = {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(merged)
        for s in family.samples
        if s.name == "x_total"
    }
    assert samples[(("clawgate_process", "chat"), ("clawgate_service", "chat"))] == 2.0
    assert samples[(("clawgate_process", "chat:2"), ("clawgate_service", "chat"))] == 3.0
    assert samples[(("clawgate_service", "health"),)] == 2.0  # one process: no process label
    assert 'clawgate_scrape_up{clawgate_service="agents"} 0.0' in merged


def test_worker_load_and_cache_counters_add_up_over_chat_processes() -> None:
    url = "http://w1/v1"
    one = ServiceFigures(version="1", started_at=10.0, in_flight={url: 2}, queued={url: 1},
                         cache={"hit": 3}, batches_active=1, batch_lines_running=1)  # fmt: skip
    two = ServiceFigures(version="1", started_at=12.0, in_flight={url: 1}, cache={"hit": 4},
                         batches_active=1, batch_lines_running=2)  # fmt: skip
    report = pb.HealthReport(components=[pb.Component(name="w", kind="llm_worker")])
    report.components[0].worker.url = url
    apply_figures(report, {"chat": one, "chat:2": two})
    worker = report.components[0].worker
    assert (worker.in_flight, worker.queued) == (3, 1)
    assert report.cache.hits == 7
    # Every process counts the same active batches (one set in Redis); lines add up.
    assert (report.batches.active, report.batches.running_lines) == (1, 3)
