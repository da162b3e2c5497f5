"""The foundation end to end: real Envoy, Redis, services and stand-in workers."""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from clawgate.agents.v1 import agent_service_pb2 as agents_pb
from clawgate.agents.v1 import agent_service_pb2_grpc as agents_grpc
from clawgate.chat.v1 import chat_service_pb2 as chat_pb
from clawgate.chat.v1 import chat_service_pb2_grpc as chat_grpc
from clawgate.health.v1 import health_service_pb2 as health_pb
from clawgate.health.v1 import health_service_pb2_grpc as health_grpc
from clawgate.launcher.stack import Stack


def auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token}"}


def assert_openai_error(
    reply: requests.Response, status: int, message: str | None = None
) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    if message is not None:
        assert body["error"]["message"] == message
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize("path", ["/api/v1/models", "/api/v1/agents", "/v1/models"])
def test_rest_without_token_is_refused(stack: Stack, path: str) -> None:
    reply = requests.get(stack.rest_url + path, timeout=10)
    error = assert_openai_error(reply, 401, "unauthorized: gateway token missing")
    assert error["type"] == "authentication_error"


def test_rest_with_wrong_token_is_refused(stack: Stack) -> None:
    reply = requests.get(
        stack.rest_url + "/api/v1/models", headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert_openai_error(reply, 401, "unauthorized: gateway token mismatch")
    assert "nope" not in reply.text


def test_chat_without_token_is_refused_before_anything_else(stack: Stack) -> None:
    reply = requests.post(
        stack.rest_url + "/api/v1/chat/completions",
        json={"model": "qwen3:32b", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert_openai_error(reply, 401, "unauthorized: gateway token missing")


@pytest.mark.parametrize("through", ["envoy", "direct"])
def test_grpc_without_token_is_unauthenticated(stack: Stack, through: str) -> None:
    chat_target = stack.grpc_target if through == "envoy" else stack.addrs.chat
    agents_target = stack.grpc_target if through == "envoy" else stack.addrs.agents
    with grpc.insecure_channel(chat_target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            chat_grpc.ChatServiceStub(channel).ListModels(chat_pb.ListModelsRequest(), timeout=10)
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert caught.value.details() == "unauthorized: gateway token missing"
    with grpc.insecure_channel(agents_target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            agents_grpc.AgentServiceStub(channel).ListAgents(
                agents_pb.ListAgentsRequest(), metadata=(("authorization", "Bearer bad"),),
                timeout=10,
            )  # fmt: skip
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert caught.value.details() == "unauthorized: gateway token mismatch"


def test_health_without_token_tells_only_the_overall_status(stack: Stack) -> None:
    reply = requests.get(stack.rest_url + "/api/v1/health", timeout=10)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["status"] in {"ok", "degraded"}
    assert body["components"] == []
    assert "Authorization" in body["hint"]


def test_health_with_token_reports_every_component(stack: Stack) -> None:
    reply = requests.get(stack.rest_url + "/api/v1/health", headers=auth(stack), timeout=10)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    by_name = {c["name"]: c for c in body["components"]}
    for name in ("chat", "agents", "redis"):
        assert by_name[name]["status"] == "ok", by_name[name]
    workers = [c for c in body["components"] if c["kind"] == "llm_worker"]
    urls = {c["worker"]["url"] for c in workers}
    assert urls == {
        stack.standins["main"] + "/v1",
        stack.standins["main"],
        stack.standins["pool-a"] + "/v1",
        stack.standins["pool-b"] + "/v1",
    }
    main = by_name[f"my-ollama:{stack.standins['main']}/v1"]
    # ghost:7b is configured but not pulled: the worker works, the model needs `ollama pull`.
    assert main["status"] == "degraded"
    assert main["worker"]["missing_models"] == ["ghost:7b"]
    assert "ollama pull ghost:7b" in main["detail"]
    assert "qwen3:32b" in main["worker"]["pulled_models"]
    assert body["status"] == "degraded"
    assert isinstance(body["components"][0]["latency_ms"], float | int)


def test_health_reports_loaded_models_and_gpu_memory(stack: Stack) -> None:
    requests.post(
        stack.rest_url + "/api/v1/chat/completions",
        headers=auth(stack),
        json={"model": "qwen3:8b", "messages": [{"role": "user", "content": "load it"}],
              "max_tokens": 3},
        timeout=30,
    )  # fmt: skip
    time.sleep(1.1)  # the health report is cached for one second
    body = requests.get(stack.rest_url + "/api/v1/health", headers=auth(stack), timeout=10).json()
    loaded = [
        m
        for c in body["components"] if c["kind"] == "llm_worker"
        for m in c["worker"]["loaded_models"]
    ]  # fmt: skip
    assert any(m["name"] == "qwen3:8b" and m["size_vram_bytes"] > 0 for m in loaded), loaded


@pytest.mark.parametrize("through", ["envoy", "direct"])
def test_health_over_grpc(stack: Stack, through: str) -> None:
    target = stack.grpc_target if through == "envoy" else stack.addrs.health
    with grpc.insecure_channel(target) as channel:
        stub = health_grpc.HealthServiceStub(channel)
        anonymous = stub.GetHealth(health_pb.GetHealthRequest(), timeout=10)
        full = stub.GetHealth(
            health_pb.GetHealthRequest(), metadata=(("authorization", f"Bearer {stack.token}"),),
            timeout=10,
        )  # fmt: skip
    assert not anonymous.components and anonymous.status
    assert {c.name for c in full.components} >= {"chat", "agents", "redis"}


def test_unknown_endpoint_is_an_openai_404(stack: Stack) -> None:
    reply = requests.get(stack.rest_url + "/api/v1/nothing?token=abc", timeout=10)
    error = assert_openai_error(reply, 404)
    assert "/api/v1/nothing" in error["message"] and "abc" not in error["message"]


def test_malformed_json_rejected_by_envoy_is_an_openai_400(stack: Stack) -> None:
    reply = requests.post(
        stack.rest_url + "/api/v1/agents",
        headers={**auth(stack), "Content-Type": "application/json"},
        data=b'{"name": ',
        timeout=10,
    )
    error = assert_openai_error(reply, 400)
    assert error["type"] == "invalid_request_error"


def test_rest_replies_do_not_leak_grpc_headers(stack: Stack) -> None:
    reply = requests.get(stack.rest_url + "/api/v1/models", headers=auth(stack), timeout=10)
    assert reply.status_code == 200
    assert not [h for h in reply.headers if h.lower().startswith("grpc-")]
    assert reply.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    ("name", "service"),
    [
        ("chat", "clawgate.chat.v1.ChatService"),
        ("agents", "clawgate.agents.v1.AgentService"),
        ("health", "clawgate.health.v1.HealthService"),
    ],
)
def test_every_service_serves_grpc_health_and_reflection(
    stack: Stack, name: str, service: str
) -> None:
    with grpc.insecure_channel(getattr(stack.addrs, name)) as channel:
        health = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[no-untyped-call]
        answers = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
            timeout=5,
            metadata=(("authorization", f"Bearer {stack.token}"),),
        )
        names = {s.name for a in answers for s in a.list_services_response.service}
    assert service in names and "grpc.health.v1.Health" in names


def test_sigterm_drains_in_flight_calls_then_exits_cleanly(stack: Stack) -> None:
    """A streaming call in flight when the chat service gets SIGTERM still completes."""
    standin = stack.standins["main"]
    requests.patch(standin + "/_standin/settings", json={"token_delay_ms": 100}, timeout=5)
    chunks: list[str] = []
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            with grpc.insecure_channel(stack.addrs.chat) as channel:
                stream = chat_grpc.ChatServiceStub(channel).StreamChatCompletion(
                    chat_pb.StreamChatCompletionRequest(
                        params=chat_pb.ChatCompletionParams(
                            model="llama3.2:latest", max_tokens=8, temperature=0,
                            messages=[chat_pb.ChatMessage(role="user", content=_text("drain me"))],
                        )
                    ),
                    metadata=(("authorization", f"Bearer {stack.token}"),
                              ("cache-control", "no-cache, no-store")),
                    timeout=30,
                )  # fmt: skip
                for chunk in stream:
                    chunks.extend(c.finish_reason for c in chunk.choices if c.finish_reason)
                    outcome.setdefault("first", time.monotonic())
            outcome["ok"] = True
        except grpc.RpcError as err:
            outcome["error"] = f"{err.code()}: {err.details()}"

    try:
        worker = threading.Thread(target=call)
        worker.start()
        deadline = time.monotonic() + 10
        while "first" not in outcome and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "first" in outcome, outcome
        child = stack.children["chat"]
        child.signal(signal.SIGTERM)
        worker.join(30)
        assert outcome.get("ok"), outcome
        assert chunks == ["length"]
        assert child.process is not None and child.process.wait(15) == 0
        assert "stopped" in child.log_tail(5)
    finally:
        requests.post(standin + "/_standin/reset", timeout=5)
        stack.restart("chat")


def test_health_says_down_with_503_when_chat_is_down(stack: Stack) -> None:
    stack.stop("chat")
    try:

        def health() -> requests.Response:
            return requests.get(stack.rest_url + "/api/v1/health", headers=auth(stack), timeout=10)

        deadline = time.monotonic() + 15  # the background checks notice within a round
        while (reply := health()).status_code != 503 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert reply.status_code == 503
        body = reply.json()
        assert body["status"] == "down"
        chat = next(c for c in body["components"] if c["name"] == "chat")
        assert chat["status"] == "down"
        reply = requests.get(stack.rest_url + "/api/v1/models", headers=auth(stack), timeout=10)
        error = assert_openai_error(reply, 503)
        assert "/api/v1/health" in error["message"]
    finally:
        stack.start("chat")
        stack.wait_envoy_healthy()


def _text(value: str) -> Any:
    from google.protobuf import struct_pb2

    return struct_pb2.Value(string_value=value)


def test_health_json_is_plain_numbers_and_strings(stack: Stack) -> None:
    body = requests.get(stack.rest_url + "/api/v1/health", headers=auth(stack), timeout=10).json()
    json.dumps(body)
    assert isinstance(body["checked_at"], str) and body["checked_at"].endswith("Z")
