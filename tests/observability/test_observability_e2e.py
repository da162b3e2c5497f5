"""Observability through the real stack: /metrics counts what was sent, /healthz and /readyz
in each state, request ids from the client to every service log and the worker, and the
health report's service figures. One private stack for the module (it stops parts of it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from clawgate.chat.v1 import chat_service_pb2 as chat_pb
from clawgate.chat.v1 import chat_service_pb2_grpc as chat_grpc
from clawgate.common.services import SERVICES, Protocol
from clawgate.launcher.stack import Stack, local_plan

MODEL = "qwen3:32b"
PRICES = {"input": 0.6, "output": 2.4, "cacheRead": 0.06, "cacheWrite": 0}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _config(standins: dict[str, str]) -> dict[str, Any]:
    model = {"id": MODEL, "name": MODEL, "contextWindow": 32000, "maxTokens": 4096,
             "cost": PRICES}  # fmt: skip
    local = {"baseUrl": standins["obs"] + "/v1", "api": "openai-completions", "models": [model]}
    return {
        "providers": {"local": local},
        "cache": {"ttlSeconds": 600, "namespace": f"obs-{uuid.uuid4().hex[:6]}"},
        "chat": {"firstTokenTimeoutSeconds": 5, "maxRetries": 0, "retryBackoffSeconds": 0.05},
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    plan = local_plan(tmp_path_factory.mktemp("obs"), {"obs": (MODEL,)}, _config)
    running = Stack(plan)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token}"}


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def scrape(stack: Stack) -> Samples:
    reply = requests.get(stack.rest_url + "/metrics", headers=auth(stack), timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def chat(stack: Stack, text: str, **extra: Any) -> requests.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 8,
            **extra}  # fmt: skip
    return requests.post(
        stack.rest_url + "/api/v1/chat/completions", json=body, headers=auth(stack), timeout=30
    )


def test_metrics_need_a_token(stack: Stack) -> None:
    reply = requests.get(stack.rest_url + "/metrics", timeout=10)
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "missing_token"


def test_metrics_count_exactly_what_was_sent(stack: Stack) -> None:
    before = scrape(stack)
    tag = uuid.uuid4().hex
    usages = []
    for text in (f"first {tag}", f"second {tag}", f"first {tag}"):  # 2 misses, then a hit
        reply = chat(stack, text)
        assert reply.status_code == 200, reply.text
        usages.append(reply.json()["usage"])
    assert reply.headers["x-cache"] == "HIT"
    streamed = chat(stack, f"stream {tag}", stream=True,
                    stream_options={"include_usage": True})  # fmt: skip
    assert streamed.status_code == 200
    frames = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: {")]
    usages.append(json.loads(frames[-1])["usage"])
    missing = requests.post(
        stack.rest_url + "/api/v1/chat/completions", headers=auth(stack), timeout=30,
        json={"model": "nope:1b", "messages": [{"role": "user", "content": "x"}]},
    )  # fmt: skip
    assert missing.status_code == 404
    after = scrape(stack)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests_total = "clawgate_chat_requests_total"
    http = {"clawgate_service": "chat", "method": "CreateChatCompletionHttp"}
    assert delta(requests_total, **http, model=MODEL, code="200", cache="MISS", stream="false") == 2
    assert delta(requests_total, **http, model=MODEL, code="200", cache="HIT", stream="false") == 1
    assert delta(requests_total, **http, model=MODEL, code="200", cache="MISS", stream="true") == 1
    assert delta(requests_total, **http, model="unknown", code="404") == 1
    duration = "clawgate_chat_request_duration_seconds_count"
    assert delta(duration, model=MODEL, stream="false") == 3
    assert delta(duration, model=MODEL, stream="true") == 1
    assert delta("clawgate_chat_time_to_first_token_seconds_count", model=MODEL) == 4
    assert delta("clawgate_chat_gateway_overhead_seconds_count", model=MODEL) == 4
    completion = sum(u["completion_tokens"] for u in usages)
    prompt = sum(u["prompt_tokens"] for u in usages)
    assert delta("clawgate_chat_tokens_total", model=MODEL, kind="completion") == completion
    assert delta("clawgate_chat_tokens_total", model=MODEL, kind="prompt") == prompt
    # The hit is priced at cacheRead; the three upstream answers at input/output.
    hit = usages[2]
    expected = (
        sum(
            (u["prompt_tokens"] * PRICES["input"] + u["completion_tokens"] * PRICES["output"]) / 1e6
            for i, u in enumerate(usages)
            if i != 2
        )
        + (hit["prompt_tokens"] + hit["completion_tokens"]) * PRICES["cacheRead"] / 1e6
    )
    assert delta("clawgate_chat_cost_usd_total", model=MODEL) == pytest.approx(expected, rel=1e-6)
    assert delta("clawgate_cache_events_total", event="hit") == 1
    assert delta("clawgate_cache_events_total", event="miss") == 3
    assert delta("clawgate_cache_events_total", event="store") == 3
    # The gRPC layer of every service, and Envoy's own stats, are in the same scrape.
    grpc_calls = "clawgate_grpc_server_handled_total"
    method = "/clawgate.chat.v1.ChatService/CreateChatCompletionHttp"
    assert delta(grpc_calls, clawgate_service="chat", method=method, code="OK") == 4
    assert value(after, "clawgate_scrape_up", clawgate_service="envoy") == 1
    assert value(after, "envoy_cluster_upstream_rq_total", envoy_cluster_name="chat") > 0
    worker = {"worker": stack.standins["obs"] + "/v1"}
    assert value(after, "clawgate_worker_in_flight", **worker) == 0
    assert value(after, "clawgate_component_up", component=worker["worker"]) == 1


def test_metric_labels_stay_bounded(stack: Stack) -> None:
    secret = f"prompt-{uuid.uuid4().hex}"
    assert chat(stack, secret).status_code == 200
    text = requests.get(stack.rest_url + "/metrics", headers=auth(stack), timeout=10).text
    assert secret not in text and stack.token not in text


def probe(stack: Stack, path: str) -> requests.Response:
    return requests.get(stack.rest_url + path, timeout=10)


def test_healthz_and_readyz_when_all_is_up(stack: Stack) -> None:
    # Right after start the background checks may not have seen every process up yet.
    wait_until(lambda: all(probe(stack, p).status_code == 200 for p in ("/healthz", "/readyz")))
    for path in ("/healthz", "/readyz"):
        reply = probe(stack, path)
        assert reply.status_code == 200, reply.text
        assert reply.json()["status"] == "ok"


def test_worker_down_fails_readiness_not_liveness(stack: Stack) -> None:
    stack.stop("standin:obs")
    try:
        wait_until(lambda: probe(stack, "/readyz").status_code == 503)
        body = probe(stack, "/readyz").json()
        assert body["status"] == "fail"
        assert "no LLM worker is reachable" in body["reasons"][0]
        assert probe(stack, "/healthz").status_code == 200
    finally:
        stack.start("standin:obs")
    wait_until(lambda: probe(stack, "/readyz").status_code == 200)


def test_redis_down_keeps_readiness_and_health_says_why(stack: Stack) -> None:
    stack.stop("redis")
    try:

        def redis_down() -> bool:
            report = requests.get(
                stack.rest_url + "/api/v1/health", headers=auth(stack), timeout=10
            ).json()
            redis = next(c for c in report["components"] if c["name"] == "redis")
            return bool(redis["status"] == "down" and redis["detail"])

        wait_until(redis_down)
        assert probe(stack, "/readyz").status_code == 200
        assert probe(stack, "/healthz").status_code == 200
    finally:
        stack.start("redis")
    report = requests.get(stack.rest_url + "/api/v1/health", headers=auth(stack), timeout=10)
    redis = next(c for c in report.json()["components"] if c["name"] == "redis")
    assert redis["last_error"]  # remembered after recovery


def test_health_report_has_service_figures_and_cache(stack: Stack) -> None:
    chat(stack, f"figures {uuid.uuid4().hex}")

    def figures_in() -> bool:
        report = requests.get(
            stack.rest_url + "/api/v1/health", headers=auth(stack), timeout=10
        ).json()
        grpc_services = {s.name for s in SERVICES if s.protocol is Protocol.GRPC}
        services = {
            c["name"]: c
            for c in report["components"]
            if c["kind"] == "service" and c["name"] in grpc_services
        }
        return (
            all(s["version"] and s["uptime_seconds"] > 0 for s in services.values())
            and int(report["cache"]["misses"]) > 0
        )

    wait_until(figures_in)


def _log_lines(path: Path, needle: str) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if needle in line and line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_request_id_reaches_every_service_log_and_the_worker(stack: Stack) -> None:
    name = f"obs-agent-{uuid.uuid4().hex[:6]}"
    created = requests.post(
        stack.rest_url + "/api/v1/agents", headers=auth(stack), timeout=10,
        json={"name": name, "model": MODEL, "system_prompt": "Be brief."},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    rid = f"client-{uuid.uuid4().hex}"
    reply = requests.post(
        stack.rest_url + "/api/v1/chat/completions", timeout=30,
        headers={**auth(stack), "x-request-id": rid},
        json={"model": f"agent:{name}", "messages": [{"role": "user", "content": rid[:12]}]},
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-request-id"] == rid
    logs = stack.plan.logs

    def everywhere() -> bool:
        chat_lines = _log_lines(logs / "chat.log", rid)
        agent_lines = _log_lines(logs / "agents.log", rid)
        envoy_lines = _log_lines(logs / "envoy.log", rid)
        return bool(chat_lines and agent_lines and envoy_lines)

    wait_until(everywhere)
    chat_lines = _log_lines(logs / "chat.log", rid)
    assert all(line.get("request_id") == rid for line in chat_lines)
    access = next(line for line in chat_lines if line["msg"] == "chat request")
    assert access["model"] == MODEL and access["requested_model"] == f"agent:{name}"
    assert access["status"] == 200 and access["cache"] in ("MISS", "HIT")
    assert access["completion_tokens"] > 0 and access["overhead_ms"] >= 0
    assert "content" not in json.dumps(access)  # never the prompt or the answer
    upstream = requests.get(stack.standins["obs"] + "/_standin/requests", timeout=10).json()
    seen = [r for r in upstream["requests"] if r["headers"].get("x-request-id") == rid]
    assert seen, "the worker did not receive the request id"
    # Errors carry it too, and Envoy makes one when the client sends none.
    error = requests.get(stack.rest_url + "/api/v1/agents/none-such", headers=auth(stack),
                         timeout=10)  # fmt: skip
    assert error.status_code == 404 and error.headers.get("x-request-id")


def test_grpc_callers_get_the_request_id_in_trailers(stack: Stack) -> None:
    rid = f"grpc-{uuid.uuid4().hex}"
    with grpc.insecure_channel(stack.addrs.chat) as channel:
        stub = chat_grpc.ChatServiceStub(channel)
        _, call = stub.ListModels.with_call(
            chat_pb.ListModelsRequest(),
            metadata=(("authorization", f"Bearer {stack.token}"), ("x-request-id", rid)),
            timeout=10,
        )
    assert ("x-request-id", rid) in tuple(call.trailing_metadata())


def test_access_logs_never_hold_tokens(stack: Stack) -> None:
    requests.get(stack.rest_url + f"/api/v1/models?token={stack.token}", timeout=10)
    requests.get(stack.rest_url + "/api/v1/models", headers=auth(stack), timeout=10)

    def logged() -> bool:
        return bool(_log_lines(stack.plan.logs / "envoy.log", '"path":"/api/v1/models"'))

    wait_until(logged)
    for name in ("envoy.log", "chat.log", "agents.log", "health.log"):
        text = (stack.plan.logs / name).read_text(encoding="utf-8", errors="replace")
        assert stack.token not in text, name


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "clawgate-dashboard.json"
METRIC_NAME = re.compile(r"\b((?:clawgate|envoy|process)_[a-z0-9_]+)\b")


def test_dashboard_queries_only_exported_metrics(stack: Stack) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 20
    # Label names (in `by (…)` and `{…}`) are not metric names.
    bare = [re.sub(r"by \([^)]*\)|\{[^}]*\}", "", e) for e in exprs]
    used = {m for e in bare for m in METRIC_NAME.findall(e)}
    assert chat(stack, f"dashboard {uuid.uuid4().hex}").status_code == 200
    text = requests.get(stack.rest_url + "/metrics", headers=auth(stack), timeout=10).text
    # Families without samples yet (e.g. errors never seen) still declare HELP and TYPE.
    exported = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    exported |= {line.split("{")[0].split()[0] for line in text.splitlines()
                 if line and not line.startswith("#")}  # fmt: skip
    assert used - exported == set(), "the dashboard names metrics nobody exports"
    names_needed = {"clawgate_chat_requests_total", "clawgate_worker_in_flight",
                    "clawgate_worker_vram_used_bytes", "clawgate_cache_events_total"}  # fmt: skip
    assert names_needed <= used


def status_command(
    stack: Stack, *args: str, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLAWGATE_URL": url or stack.rest_url, "CLAWGATE_TOKEN": stack.token,
           "NO_COLOR": "1"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "clawgate.cli", "status", *args],
        capture_output=True, text=True, env=env, timeout=30,
    )  # fmt: skip


def test_status_command_prints_the_table_and_exits_by_status(stack: Stack) -> None:
    shown = status_command(stack)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "OK" in shown.stdout and "chat" in shown.stdout and "redis" in shown.stdout
    as_json = status_command(stack, "--json")
    assert json.loads(as_json.stdout)["status"] == "ok"
    stack.stop("standin:obs")
    try:
        wait_until(lambda: status_command(stack).returncode == 2)
    finally:
        stack.start("standin:obs")
    wait_until(lambda: status_command(stack).returncode == 0)
    gone = status_command(stack, url="http://127.0.0.1:9")
    assert gone.returncode == 2 and "cannot read" in gone.stderr


def test_every_chat_answer_says_the_gateway_overhead(stack: Stack) -> None:
    tag = uuid.uuid4().hex
    for reply in (
        chat(stack, f"overhead {tag}"),  # a miss: the worker's time is not the gateway's
        chat(stack, f"overhead {tag}"),  # a hit: all of it is the gateway's
        chat(stack, f"overhead stream {tag}", stream=True),
    ):
        assert reply.status_code == 200, reply.text
        overhead = float(reply.headers["x-clawgate-overhead-ms"])
        assert overhead >= 0
    # The miss waited on the worker (5 ms a token): its overhead excludes that wait.
    miss = chat(stack, f"overhead slow {tag}", max_tokens=32)
    elapsed_ms = miss.elapsed.total_seconds() * 1000
    assert float(miss.headers["x-clawgate-overhead-ms"]) < elapsed_ms
