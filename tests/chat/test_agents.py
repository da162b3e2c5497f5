"""`agent:<name>` requests: the agent's model, system prompt and defaults."""

from __future__ import annotations

import pytest

from clawgate.agents.v1 import agent_service_pb2 as agents_pb
from clawgate.common.errors import ApiError
from services.chat.agents import agent_reference, apply_agent
from services.chat.request import parse_request
from tests.chat.conftest import user


def helper(**config: object) -> agents_pb.Agent:
    return agents_pb.Agent(
        id="a1",
        name="helper",
        model="llama3.2:latest",
        system_prompt="You are terse.",
        config=agents_pb.AgentConfig(**config),  # type: ignore[arg-type]
    )


def test_agent_reference() -> None:
    assert agent_reference("agent:helper") == "helper"
    assert agent_reference("qwen3:32b") is None


def test_agent_fills_what_the_request_left_out() -> None:
    request = parse_request({"model": "agent:helper", "messages": user("hi"), "top_p": 0.5})
    apply_agent(request, helper(temperature=0.0, top_p=0.9, max_tokens=30, stop=["END"]))
    body = request.body
    assert body["model"] == "llama3.2:latest" and request.requested_model == "agent:helper"
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hi"},
    ]
    # An explicit 0.0 in the agent counts; the request's own top_p wins.
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.0, 0.5, 30)
    assert body["stop"] == ["END"]
    assert "presence_penalty" not in body and "frequency_penalty" not in body
    assert request.agent_id == "a1"


def test_agent_without_model_is_a_clear_error() -> None:
    request = parse_request({"model": "agent:helper", "messages": user("hi")})
    with pytest.raises(ApiError) as caught:
        apply_agent(request, agents_pb.Agent(id="a1", name="helper"))
    assert caught.value.status == 400 and "helper" in caught.value.message
