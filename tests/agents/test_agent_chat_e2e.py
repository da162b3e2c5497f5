"""Chatting with an agent end to end: `model: "agent:<name>"` through Envoy reaches the
stand-in ollama with the agent's model, system prompt and config (the request's own
values winning), over REST and gRPC; changes and deletes take effect within a second."""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc
import pytest
import requests
from google.protobuf import struct_pb2

from clawgate.chat.v1 import chat_service_pb2 as chat_pb
from clawgate.chat.v1 import chat_service_pb2_grpc as chat_grpc
from clawgate.launcher.stack import Stack

SYSTEM_PROMPT = "You are the Clawgate test agent. Answer in one word."


class Gateway:
    def __init__(self, stack: Stack) -> None:
        self.url = stack.rest_url + "/api/v1"
        self.headers = {"Authorization": f"Bearer {stack.token}"}
        self.standin = stack.standins["main"]

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(self.url + path, json=body, headers=self.headers, timeout=30)

    def chat(self, model: str, text: str, **extra: Any) -> requests.Response:
        body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
        return self.post("/chat/completions", body)

    def upstream_request(self, text: str) -> dict[str, Any]:
        """The body the stand-in received for the conversation whose user turn is `text`."""
        log = requests.get(self.standin + "/_standin/requests", timeout=10).json()["requests"]
        for record in reversed(log):
            messages = (record.get("body") or {}).get("messages") or []
            if any(m.get("content") == text for m in messages):
                body: dict[str, Any] = record["body"]
                return body
        raise AssertionError(f"no request with {text!r} reached the stand-in")


@pytest.fixture
def gateway(stack: Stack) -> Gateway:
    return Gateway(stack)


def unique_text() -> str:
    # A fresh user turn per request: no prompt-cache hit can hide the upstream call.
    return f"ping {uuid.uuid4().hex}"


def create_agent(gateway: Gateway, **fields: Any) -> dict[str, Any]:
    reply = gateway.post("/agents", {"name": f"chat-{uuid.uuid4().hex[:8]}", **fields})
    assert reply.status_code == 200, reply.text
    agent: dict[str, Any] = reply.json()
    return agent


def test_chat_with_agent_uses_its_model_prompt_and_config(gateway: Gateway) -> None:
    config = {"temperature": 0.3, "max_tokens": 64, "top_p": 0.9, "stop": ["END"]}
    agent = create_agent(
        gateway, model="llama3.2:latest", system_prompt=SYSTEM_PROMPT, config=config
    )
    for reference in (agent["name"], agent["id"]):
        text = unique_text()
        reply = gateway.chat(f"agent:{reference}", text)
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"]
        upstream = gateway.upstream_request(text)
        assert upstream["model"] == "llama3.2:latest"
        assert upstream["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
        assert upstream["messages"][-1] == {"role": "user", "content": text}
        assert upstream["temperature"] == pytest.approx(0.3)
        assert upstream["max_tokens"] == 64
        assert upstream["top_p"] == pytest.approx(0.9)
        assert upstream["stop"] == ["END"]


def test_the_requests_own_values_override_the_agents_defaults(gateway: Gateway) -> None:
    agent = create_agent(
        gateway, model="llama3.2:latest", config={"temperature": 0.3, "max_tokens": 64}
    )
    text = unique_text()
    reply = gateway.chat(f"agent:{agent['name']}", text, temperature=1.2, max_tokens=10)
    assert reply.status_code == 200, reply.text
    upstream = gateway.upstream_request(text)
    assert upstream["temperature"] == pytest.approx(1.2)
    assert upstream["max_tokens"] == 10


def test_agent_on_a_native_ollama_model_gets_its_options(gateway: Gateway) -> None:
    agent = create_agent(
        gateway, model="gemma3:4b", system_prompt=SYSTEM_PROMPT,
        config={"temperature": 0.4, "max_tokens": 32},
    )  # fmt: skip
    text = unique_text()
    reply = gateway.chat(f"agent:{agent['name']}", text)
    assert reply.status_code == 200, reply.text
    upstream = gateway.upstream_request(text)
    assert upstream["model"] == "gemma3:4b"
    assert upstream["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert upstream["options"]["temperature"] == pytest.approx(0.4)
    assert upstream["options"]["num_predict"] == 32


def test_agents_are_listed_as_models(gateway: Gateway) -> None:
    agent = create_agent(gateway, model="qwen3:32b")
    reply = requests.get(gateway.url + "/models", headers=gateway.headers, timeout=10)
    assert reply.status_code == 200, reply.text
    assert f"agent:{agent['name']}" in {m["id"] for m in reply.json()["data"]}


def test_changes_and_deletes_take_effect_within_a_second(gateway: Gateway) -> None:
    agent = create_agent(gateway, model="llama3.2:latest", system_prompt="first prompt")
    model = f"agent:{agent['name']}"
    assert gateway.chat(model, unique_text()).status_code == 200  # now cached by chat
    reply = requests.patch(
        f"{gateway.url}/agents/{agent['id']}",
        json={"system_prompt": "second prompt"},
        headers=gateway.headers,
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    time.sleep(1.05)
    text = unique_text()
    assert gateway.chat(model, text).status_code == 200
    assert gateway.upstream_request(text)["messages"][0]["content"] == "second prompt"

    reply = requests.delete(
        f"{gateway.url}/agents/{agent['id']}", headers=gateway.headers, timeout=10
    )
    assert reply.status_code == 200, reply.text
    time.sleep(1.05)
    gone = gateway.chat(model, unique_text())
    assert gone.status_code == 404, gone.text
    assert gone.json()["error"]["param"] == "model"


@pytest.mark.parametrize("through", ["envoy", "direct"])
def test_typed_grpc_chat_with_an_agent(stack: Stack, gateway: Gateway, through: str) -> None:
    agent = create_agent(
        gateway, model="llama3.2:latest", system_prompt=SYSTEM_PROMPT,
        config={"temperature": 0.5, "max_tokens": 48},
    )  # fmt: skip
    text = unique_text()
    params = chat_pb.ChatCompletionParams(
        model=f"agent:{agent['name']}",
        messages=[chat_pb.ChatMessage(role="user", content=struct_pb2.Value(string_value=text))],
    )
    target = stack.grpc_target if through == "envoy" else stack.addrs.chat
    with grpc.insecure_channel(target) as channel:
        stub = chat_grpc.ChatServiceStub(channel)
        stub.CreateChatCompletion(
            chat_pb.CreateChatCompletionRequest(params=params),
            metadata=(("authorization", f"Bearer {stack.token}"),),
            timeout=30,
        )
    upstream = gateway.upstream_request(text)
    assert upstream["model"] == "llama3.2:latest"
    assert upstream["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert upstream["temperature"] == pytest.approx(0.5)
    assert upstream["max_tokens"] == 48
