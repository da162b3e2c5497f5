"""Gateway tools through the real stack: GET /api/v1/tools (REST and gRPC), agents whose
`tools` are checked, and agents that use a built-in, a plugin tool and an MCP tool, with
the steps visible in the stream; bad arguments go back to the model, client tools go back
to the client."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

import grpc
import openai
import requests

from clawgate.chat.v1 import chat_service_pb2 as chat_pb
from clawgate.chat.v1 import chat_service_pb2_grpc as chat_grpc
from tests.plugins.conftest import PluginStack

ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")


def create_agent(env: PluginStack, tools: list[str]) -> requests.Response:
    body = {"name": f"tools-{uuid.uuid4().hex[:8]}", "model": "llama3.2:latest", "tools": tools}
    return requests.post(env.url + "/agents", json=body, headers=env.headers(), timeout=30)


def agent_model(env: PluginStack, tools: list[str]) -> str:
    reply = create_agent(env, tools)
    assert reply.status_code == 200, reply.text
    assert reply.json()["tools"] == tools
    return f"agent:{reply.json()['name']}"


def ask(model: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def sse(reply: requests.Response) -> list[dict[str, Any]]:
    assert reply.status_code == 200, reply.text
    assert reply.text.endswith("data: [DONE]\n\n")
    # `: keep-alive` comment frames (sent while a worker thinks) carry no data.
    frames = [f.removeprefix("data: ") for f in reply.text.split("\n\n") if f.startswith("data: ")]
    return [json.loads(f) for f in frames if f != "[DONE]"]


def test_tools_are_listed_with_their_schemas(env: PluginStack) -> None:
    reply = requests.get(env.url + "/tools", headers=env.headers(), timeout=30)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    tools = {t["name"]: t for t in body["data"]}
    assert body["object"] == "list" and body["unavailable"] == []
    assert set(tools) == {
        "current_time",
        "calculator",
        "shout",
        "repeat",
        "audit_count",
        "notes__word_length",  # the MCP server's allowed tools; `secret` is not allowed
        "notes__crash",
        "remote__word_length",  # the same server over streamable HTTP
    }
    assert tools["shout"]["source"] == "plugin:test-tools"
    assert tools["shout"]["parameters"]["required"] == ["text"]
    assert tools["notes__word_length"]["source"] == "mcp:notes"
    assert tools["notes__word_length"]["parameters"]["properties"]["word"]["type"] == "string"
    with grpc.insecure_channel(env.stack.grpc_target) as channel:
        listed = chat_grpc.ChatServiceStub(channel).ListTools(
            chat_pb.ListToolsRequest(), metadata=(("authorization", f"Bearer {env.stack.token}"),)
        )
    assert {t.name for t in listed.data} == set(tools)


def test_agents_accept_only_existing_tools(env: PluginStack) -> None:
    reply = create_agent(env, ["current_time", "teleport"])
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == "tool_not_found" and error["param"] == "tools"
    assert "teleport" in error["message"] and "current_time" in error["message"]
    created = create_agent(env, ["calculator"]).json()
    patched = requests.patch(
        env.url + f"/agents/{created['id']}",
        json={"tools": ["calculator", "notes__secret"]},
        headers=env.headers(),
        timeout=30,
    )
    assert patched.status_code == 400 and "notes__secret" in patched.json()["error"]["message"]
    patched = requests.patch(
        env.url + f"/agents/{created['id']}",
        json={"tools": ["shout"]},
        headers=env.headers(),
        timeout=30,
    )
    assert patched.status_code == 200 and patched.json()["tools"] == ["shout"]


def test_agent_uses_a_builtin_and_a_plugin_tool_with_steps_in_the_stream(
    env: PluginStack,
) -> None:
    model = agent_model(env, ["current_time", "shout"])
    text = f"Use current_time, then shout the word Hello ({uuid.uuid4().hex[:6]})"
    chunks = sse(env.chat(ask(model, text, stream=True)))
    steps = [c["clawgate_step"] for c in chunks if "clawgate_step" in c]
    assert [(s["type"], s["name"]) for s in steps] == [
        ("tool_call", "current_time"),
        ("tool_result", "current_time"),
        ("tool_call", "shout"),
        ("tool_result", "shout"),
    ]
    assert json.loads(steps[2]["arguments"]) == {"text": "Hello"}
    assert steps[3]["result"] == "HELLO!" and steps[3]["error"] is False
    now = dt.datetime.fromisoformat(steps[1]["result"])
    assert abs((dt.datetime.now(dt.UTC) - now).total_seconds()) < 300
    # Step chunks are valid chunks with an empty delta; the answer uses both results.
    assert all(c["choices"][0]["delta"] == {} for c in chunks if "clawgate_step" in c)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert "HELLO!" in content and ISO_TIME.search(content)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["model"] == model for c in chunks)


def test_typed_grpc_stream_carries_the_steps(env: PluginStack) -> None:
    model = agent_model(env, ["shout"])
    params = chat_pb.ChatCompletionParams(model=model)
    message = params.messages.add(role="user")
    message.content.string_value = f"shout the word Grpc ({uuid.uuid4().hex[:6]})"
    with grpc.insecure_channel(env.stack.grpc_target) as channel:
        chunks = list(
            chat_grpc.ChatServiceStub(channel).StreamChatCompletion(
                chat_pb.StreamChatCompletionRequest(params=params),
                metadata=(("authorization", f"Bearer {env.stack.token}"),),
                timeout=30,
            )
        )
    steps = [c.clawgate_step for c in chunks if c.HasField("clawgate_step")]
    assert [(s.type, s.name) for s in steps] == [("tool_call", "shout"), ("tool_result", "shout")]
    assert steps[1].result == "GRPC!" and not steps[1].error
    assert "GRPC!" in "".join(c.choices[0].delta.content for c in chunks if c.choices)


def test_plain_openai_client_gets_the_final_answer(env: PluginStack) -> None:
    model = agent_model(env, ["current_time", "shout"])
    client = openai.OpenAI(base_url=env.url, api_key=env.stack.token)
    text = f"Please shout the word Ready ({uuid.uuid4().hex[:6]})"
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}]
    )
    assert answer.choices[0].finish_reason == "stop"
    assert "READY!" in (answer.choices[0].message.content or "")
    extra = answer.model_extra or {}
    assert [s["type"] for s in extra["clawgate_steps"]] == ["tool_call", "tool_result"]
    assert answer.usage is not None and answer.usage.prompt_tokens > 0
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text + "!"}], stream=True
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "READY!" in streamed


def test_agent_uses_a_tool_of_an_mcp_stdio_server(env: PluginStack) -> None:
    model = agent_model(env, ["notes__word_length"])
    text = f"Use notes__word_length on Ocean ({uuid.uuid4().hex[:6]})"
    reply = env.chat(ask(model, text))
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    steps = answer["clawgate_steps"]
    assert steps[1] == {
        "type": "tool_result",
        "id": steps[0]["id"],
        "name": "notes__word_length",
        "result": "Ocean has 5 letters",
        "error": False,
    }
    assert "Ocean has 5 letters" in answer["choices"][0]["message"]["content"]


def test_agent_uses_a_tool_of_an_mcp_http_server(env: PluginStack) -> None:
    model = agent_model(env, ["remote__word_length"])
    reply = env.chat(ask(model, f"Use remote__word_length on Lighthouse ({uuid.uuid4().hex[:6]})"))
    assert reply.status_code == 200, reply.text
    result = reply.json()["clawgate_steps"][1]
    assert (result["name"], result["result"]) == (
        "remote__word_length",
        "Lighthouse has 10 letters",
    )


def test_a_crashed_mcp_server_is_started_again(env: PluginStack) -> None:
    model = agent_model(env, ["notes__crash", "notes__word_length"])
    crashed = env.chat(ask(model, f"Use notes__crash now ({uuid.uuid4().hex[:6]})"))
    assert crashed.status_code == 200, crashed.text
    result = crashed.json()["clawgate_steps"][1]
    assert result["error"] is True and "notes" in result["result"]
    reply = env.chat(ask(model, f"Use notes__word_length on Phoenix ({uuid.uuid4().hex[:6]})"))
    assert reply.status_code == 200, reply.text
    assert reply.json()["clawgate_steps"][1]["result"] == "Phoenix has 7 letters"


def test_tool_errors_go_back_to_the_model(env: PluginStack) -> None:
    model = agent_model(env, ["calculator", "repeat"])
    # The stand-in asks for `times` of 1-10, below the schema's minimum: the call is
    # refused before the tool runs, and the model gets the reason as the tool's result.
    reply = env.chat(ask(model, f"repeat please ({uuid.uuid4().hex[:6]})"))
    assert reply.status_code == 200, reply.text
    result = reply.json()["clawgate_steps"][1]
    assert result["error"] is True
    assert re.fullmatch(
        r"Error: invalid arguments at times: \d+ is less than the minimum of 100", result["result"]
    )
    # The stand-in fills `expression` with a word: the calculator refuses it (no eval).
    reply = env.chat(ask(model, "calculator Banana"))
    assert reply.status_code == 200, reply.text
    steps = reply.json()["clawgate_steps"]
    assert json.loads(steps[0]["arguments"]) == {"expression": "Banana"}
    assert steps[1]["error"] is True and steps[1]["result"].startswith("Error: unsupported element")
    assert "Banana" in reply.json()["choices"][0]["message"]["content"]


def test_client_defined_tools_are_returned_to_the_client(env: PluginStack) -> None:
    model = agent_model(env, ["current_time"])
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    text = f"get_weather for Tokyo ({uuid.uuid4().hex[:6]})"
    reply = env.chat(ask(model, text, tools=[weather]))
    assert reply.status_code == 200, reply.text
    choice = reply.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert [c["function"]["name"] for c in choice["message"]["tool_calls"]] == ["get_weather"]
    assert "clawgate_steps" not in reply.json()


def test_the_step_limit_ends_with_an_answer(env: PluginStack) -> None:
    # maxSteps is 4: three turns may call tools, the fourth is asked without them.
    model = agent_model(env, ["current_time", "shout", "calculator", "repeat"])
    marker = uuid.uuid4().hex[:6]
    text = f"current_time, shout Hey, calculator, repeat ({marker})"
    reply = env.chat(ask(model, text))
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    calls = [s["name"] for s in answer["clawgate_steps"] if s["type"] == "tool_call"]
    assert calls == ["current_time", "shout", "calculator"]
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in answer["choices"][0]["message"]
    upstream = [
        r["body"] for r in env.upstream_requests() if marker in json.dumps(r.get("body") or {})
    ]
    assert [len(b.get("tools") or ()) for b in upstream] == [4, 4, 4, 0]
    assert answer["usage"]["prompt_tokens"] > 0
