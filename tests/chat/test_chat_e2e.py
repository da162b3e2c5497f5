"""Chat completions end to end: real Envoy, services, Redis and stand-in workers.

Clients are used as their users use them: the official `openai` SDK, the seed article's
`requests` snippets as written, and a native gRPC client through Envoy's port.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import openai
import pytest
import requests

from clawgate.chat.v1 import chat_service_pb2 as pb
from clawgate.chat.v1 import chat_service_pb2_grpc as pb_grpc
from clawgate.launcher.stack import Stack
from tests.chat.conftest import params

Json = dict[str, Any]


@pytest.fixture
def gateway(stack: Stack) -> Iterator[Stack]:
    """The stack with stand-ins reset before and after (other suites share them)."""
    reset_standins(stack)
    yield stack
    reset_standins(stack)


def reset_standins(stack: Stack) -> None:
    for url in stack.standins.values():
        requests.post(url + "/_standin/reset", timeout=5).raise_for_status()


def patch_standin(stack: Stack, name: str, **changes: Any) -> None:
    reply = requests.patch(stack.standins[name] + "/_standin/settings", json=changes, timeout=5)
    assert reply.status_code == 200, reply.text


def standin_requests(stack: Stack, name: str = "main") -> list[Json]:
    reply = requests.get(stack.standins[name] + "/_standin/requests", timeout=5)
    records: list[Json] = reply.json()["requests"]
    return records


def headers(stack: Stack, **extra: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {stack.token}", **extra}


def fresh(text: str) -> str:
    """A prompt nobody asked before (so the cache does not answer)."""
    return f"{text} [{uuid.uuid4().hex[:8]}]"


def client(stack: Stack, path: str = "/api/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.rest_url + path, api_key=stack.token, max_retries=0)


# --- OpenAI SDK ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1", "/v1"])
def test_openai_sdk_chat_completion(gateway: Stack, path: str) -> None:
    reply = client(gateway, path).chat.completions.create(
        model="qwen3:32b",
        messages=[
            {"role": "system", "content": "你是一个有帮助的助手"},
            {"role": "user", "content": fresh("你好，请介绍一下你自己")},
        ],
        temperature=0.7,
        max_tokens=1000,
    )
    assert reply.id.startswith("chatcmpl-") and reply.object == "chat.completion"
    assert isinstance(reply.created, int) and reply.model == "qwen3:32b"
    message = reply.choices[0].message
    assert message.role == "assistant" and "你好" in (message.content or "")
    assert (message.model_extra or {}).get("reasoning")  # qwen3 thinks; ollama's field
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.total_tokens > 0


def test_openai_sdk_streaming(gateway: Stack) -> None:
    stream = client(gateway).chat.completions.create(
        model="llama3.2:latest",
        messages=[{"role": "user", "content": fresh("写一个关于人工智能的短故事")}],
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.8,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "写一个关于" in text  # the stand-in quotes the prompt: Chinese round-trips
    assert len({c.id for c in chunks}) == 1
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_openai_sdk_models(gateway: Stack) -> None:
    models = {m.id: m for m in client(gateway).models.list()}
    assert {"qwen3:32b", "llama3.2:latest", "ghost:7b", "gemma3:4b", "qwen3:8b"} <= set(models)
    qwen = models["qwen3:32b"]
    assert isinstance(qwen.created, int) and qwen.object == "model"
    extra = qwen.model_extra or {}
    assert extra["context_window"] == 32000 and extra["max_tokens"] == 4096
    assert extra["available"] is True and extra["provider"] == "my-ollama"
    assert extra["cost"] == {"input": 0.6, "output": 2.4, "cache_read": 0.06, "cache_write": 0}
    assert (models["ghost:7b"].model_extra or {})["available"] is False
    one = client(gateway).models.retrieve("llama3.2:latest")
    assert one.id == "llama3.2:latest" and (one.model_extra or {})["context_window"] == 8192


def test_openai_sdk_raises_typed_errors(gateway: Stack) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(gateway).chat.completions.create(
            model="nope:1b", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client(gateway).chat.completions.create(
            model="qwen3:32b", messages=[{"role": "user", "content": "x"}], temperature=3
        )
    assert bad.value.param == "temperature"


# --- the seed article's snippets, as written ------------------------------------------


def test_seed_non_streaming_snippet(gateway: Stack) -> None:
    url = gateway.rest_url + "/api/v1/chat/completions"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {gateway.token}"}
    payload = {
        "model": "qwen3:32b",
        "messages": [
            {"role": "system", "content": "你是一个有帮助的助手"},
            {"role": "user", "content": "你好，请介绍一下你自己"},
        ],
        "temperature": 0.7,
        "max_tokens": 1000,
    }
    response = requests.post(url, headers=headers, json=payload)
    printed = json.dumps(response.json(), indent=2, ensure_ascii=False)
    body = json.loads(printed)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert set(body) >= {"id", "object", "created", "model", "choices", "usage"}
    assert body["choices"][0]["message"]["content"]
    assert "你好" in printed  # Chinese round-trips as UTF-8


def test_seed_streaming_snippet(gateway: Stack) -> None:
    url = gateway.rest_url + "/api/v1/chat/completions"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {gateway.token}"}
    payload = {
        "model": "qwen3:32b",
        "messages": [{"role": "user", "content": "写一个关于人工智能的短故事"}],
        "stream": True,
        "temperature": 0.8,
    }
    response = requests.post(url, headers=headers, json=payload, stream=True)
    printed: list[str] = []
    done = False
    for line in response.iter_lines():
        if line:
            decoded_line = line.decode("utf-8")
            if decoded_line.startswith("data: "):
                data = decoded_line[6:]
                if data != "[DONE]":
                    chunk = json.loads(data)
                    if "choices" in chunk and chunk["choices"]:  # noqa: RUF019 (as in the seed)
                        delta = chunk["choices"][0].get("delta", {})
                        if "content" in delta:
                            printed.append(delta["content"])
                else:
                    done = True
    assert response.headers["content-type"].startswith("text/event-stream")
    assert done and "写一个关于" in "".join(printed)


# --- errors through Envoy ---------------------------------------------------------------


def post_chat(stack: Stack, body: Json | bytes, **extra: str) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(
        stack.rest_url + "/api/v1/chat/completions",
        data=data,
        headers=headers(stack, **extra),
        timeout=30,
    )


def openai_error(reply: requests.Response, status: int) -> Json:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    error: Json = body["error"]
    return error


def chat_body(model: str = "llama3.2:latest", **fields: Any) -> Json:
    return {"model": model, "messages": [{"role": "user", "content": fresh("hi")}], **fields}


@pytest.mark.parametrize(
    ("body", "status", "param", "code", "fragment"),
    [
        (chat_body("gpt-4o"), 404, "model", "model_not_found", "qwen3:32b"),
        (chat_body("ghost:7b"), 404, "model", "model_not_pulled", "ollama pull ghost:7b"),
        (chat_body(messages=[]), 400, "messages", "empty_array", "messages"),
        (
            chat_body(messages=[{"role": "wizard", "content": "x"}]),
            400,
            "messages[0].role",
            "invalid_value",
            "wizard",
        ),
        (chat_body(temperature=2.5), 400, "temperature", "decimal_above_max_value", "<= 2"),
        (chat_body(max_tokens=5000), 400, "max_tokens", "integer_above_max_value", "2048"),
        (
            chat_body(messages=[{"role": "user", "content": "长" * 9000}]),
            400,
            "messages",
            "context_length_exceeded",
            "lower max_tokens",
        ),
        (chat_body(max_tokns=5), 400, "max_tokns", "unknown_parameter", "max_tokns"),
        (chat_body(n=3), 400, "n", "unsupported_value", "one choice"),
    ],
)
def test_rest_errors_in_openai_shape(
    gateway: Stack, body: Json, status: int, param: str, code: str, fragment: str
) -> None:
    error = openai_error(post_chat(gateway, body), status)
    assert (error["param"], error["code"]) == (param, code)
    assert fragment.lower() in error["message"].lower()


@pytest.mark.parametrize("data", [b'{"model": "qwen3:32b", "messages": [', b"", b"not json"])
def test_malformed_json_is_an_openai_400(gateway: Stack, data: bytes) -> None:
    error = openai_error(post_chat(gateway, data), 400)
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("fail", "status", "code", "fragment"),
    [
        ("down", 503, "upstream_unreachable", "not reachable at"),
        ("busy", 503, "upstream_busy", "lower max_tokens or use a smaller model"),
        ("oom", 503, "insufficient_gpu_memory", "lower max_tokens or use a smaller model"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_worker_failures_are_told_apart(
    gateway: Stack, fail: str, status: int, code: str, fragment: str, stream: bool
) -> None:
    # Streamed or not, a failure before the first byte keeps its HTTP status.
    patch_standin(gateway, "main", fail=fail)
    reply = post_chat(gateway, chat_body(stream=stream))
    error = openai_error(reply, status)
    assert error["code"] == code and fragment in error["message"]
    if fail == "down":
        assert gateway.standins["main"] in error["message"]
    if fail in ("down", "busy"):
        assert int(reply.headers["retry-after"]) >= 1


def test_request_timeout_header_sets_the_rest_deadline(gateway: Stack) -> None:
    patch_standin(gateway, "main", token_delay_ms=100)
    reply = post_chat(gateway, chat_body(), **{"X-Request-Timeout": "0.4"})
    error = openai_error(reply, 504)
    assert error["code"] == "request_timeout" and "0.4s" in error["message"]


def test_failure_after_streaming_began_is_an_sse_error_event(gateway: Stack) -> None:
    patch_standin(gateway, "main", fail="cut", cut_after=3)
    reply = post_chat(gateway, chat_body(stream=True))
    assert reply.status_code == 200
    frames = [f for f in reply.text.split("\n\n") if f]
    # The stream may begin with a comment, sent when the worker accepted the request.
    frames = [f for f in frames if not f.startswith(":")]
    assert all(f.startswith("data: ") for f in frames)
    assert frames[-1] != "data: [DONE]"
    assert json.loads(frames[-1][6:])["error"]["code"] == "upstream_incomplete"


# --- streaming behaviour ------------------------------------------------------------------


def test_chunks_arrive_as_the_worker_produces_them(gateway: Stack) -> None:
    patch_standin(gateway, "main", token_delay_ms=80)
    started = time.monotonic()
    reply = requests.post(
        gateway.rest_url + "/api/v1/chat/completions",
        json=chat_body(stream=True, max_tokens=12),
        headers=headers(gateway),
        stream=True,
        timeout=30,
    )
    arrivals = [
        time.monotonic() - started
        for line in reply.iter_lines()
        if line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line
    ]
    assert len(arrivals) >= 6
    # Spread out like the worker's pace (80 ms a token), not delivered in one burst.
    assert arrivals[-1] - arrivals[0] > 0.3
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert sum(g > 0.03 for g in gaps) >= len(gaps) // 2


def test_client_disconnect_cancels_the_worker_request(gateway: Stack) -> None:
    patch_standin(gateway, "main", token_delay_ms=50)
    reply = requests.post(
        gateway.rest_url + "/api/v1/chat/completions",
        json=chat_body(stream=True),
        headers=headers(gateway),
        stream=True,
        timeout=30,
    )
    lines = reply.iter_lines()
    for _ in range(3):
        next(lines)
    closed_at = time.time()
    reply.close()
    deadline = time.monotonic() + 5
    while True:
        records = standin_requests(gateway)
        if records and records[-1]["status"] != "running":
            break
        assert time.monotonic() < deadline, records
        time.sleep(0.02)
    assert records[-1]["status"] == "cancelled"
    assert records[-1]["finished_at"] - closed_at < 1.0


def test_cache_header_reaches_rest_clients(gateway: Stack) -> None:
    body = chat_body()
    first, second = post_chat(gateway, body), post_chat(gateway, body)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert first.json()["choices"] == second.json()["choices"]
    assert first.json()["id"] != second.json()["id"]
    third = post_chat(gateway, body, **{"Cache-Control": "no-cache"})
    assert third.headers["x-cache"] == "MISS"


# --- native gRPC through Envoy --------------------------------------------------------------


def test_native_grpc_client_gets_the_same_answer_as_rest(gateway: Stack) -> None:
    prompt = fresh("same over both protocols")
    metadata = (("authorization", f"Bearer {gateway.token}"), ("cache-control", "no-cache"))
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = pb_grpc.ChatServiceStub(channel)
        typed = stub.CreateChatCompletion(
            pb.CreateChatCompletionRequest(params=params("llama3.2:latest", prompt, temperature=0)),
            metadata=metadata,
            timeout=30,
        )
        chunks = list(
            stub.StreamChatCompletion(
                pb.StreamChatCompletionRequest(
                    params=params("llama3.2:latest", prompt, temperature=0)
                ),
                metadata=metadata,
                timeout=30,
            )
        )
    rest = post_chat(
        gateway,
        {
            "model": "llama3.2:latest",
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
        },
        **{"Cache-Control": "no-cache"},
    ).json()
    content = rest["choices"][0]["message"]["content"]
    assert typed.choices[0].message.content.string_value == content
    assert "".join(c.choices[0].delta.content for c in chunks if c.choices) == content
    assert typed.usage.total_tokens == rest["usage"]["total_tokens"]


# --- agents ----------------------------------------------------------------------------------


def test_agent_model_uses_the_agents_prompt_and_defaults(gateway: Stack) -> None:
    name = f"helper-{uuid.uuid4().hex[:6]}"
    created = requests.post(
        gateway.rest_url + "/api/v1/agents",
        json={
            "name": name,
            "model": "llama3.2:latest",
            "system_prompt": "You are terse.",
            "config": {"temperature": 0.1, "max_tokens": 30, "stop": ["END"]},
        },
        headers=headers(gateway),
        timeout=10,
    )
    assert created.status_code == 200, created.text
    reply = post_chat(gateway, chat_body(f"agent:{name}", temperature=0.9))
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == f"agent:{name}"
    sent = standin_requests(gateway)[-1]["body"]
    assert sent["model"] == "llama3.2:latest"
    assert sent["messages"][0] == {"role": "system", "content": "You are terse."}
    assert (sent["temperature"], sent["max_tokens"], sent["stop"]) == (0.9, 30, ["END"])

    listed = requests.get(gateway.rest_url + "/api/v1/models", headers=headers(gateway), timeout=10)
    agent = next(m for m in listed.json()["data"] if m["id"] == f"agent:{name}")
    assert agent["agent_model"] == "llama3.2:latest" and agent["owned_by"] == "clawgate"
    one = requests.get(
        gateway.rest_url + f"/api/v1/models/agent:{name}", headers=headers(gateway), timeout=10
    )
    assert one.json()["id"] == f"agent:{name}"

    error = openai_error(post_chat(gateway, chat_body("agent:nobody-here")), 404)
    assert "nobody-here" in error["message"] and error["code"] == "agent_not_found"


def test_unknown_model_lookup_is_404(gateway: Stack) -> None:
    reply = requests.get(
        gateway.rest_url + "/api/v1/models/no-such:model", headers=headers(gateway), timeout=10
    )
    error = openai_error(reply, 404)
    assert error["code"] == "model_not_found"
