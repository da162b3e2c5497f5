"""POST /v1/chat/completions against §1 of the notes: shapes, streams, reasoning, tools."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from .conftest import ASK_TOOL, TOOLS, USER_HI, Standin, chunks_of


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


async def test_non_stream_shape(standin: Standin) -> None:
    status, body = await standin.v1({"model": "llama3.2", "messages": USER_HI, "seed": 7})
    assert status == 200
    assert list(body) == [
        "id",
        "object",
        "created",
        "model",
        "system_fingerprint",
        "choices",
        "usage",
    ]
    assert re.fullmatch(r"chatcmpl-\d{1,3}", body["id"]) and int(body["id"][9:]) < 999
    assert body["object"] == "chat.completion"
    assert body["model"] == "llama3.2"  # echoed as sent, no ":latest"
    assert body["system_fingerprint"] == "fp_ollama"
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("About What is the capital of France:")
    assert "reasoning" not in choice["message"] and "tool_calls" not in choice["message"]
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_non_stream_reasoning_model(standin: Standin) -> None:
    _, body = await standin.v1({"model": "qwen3:8b", "messages": USER_HI, "seed": 1})
    message = body["choices"][0]["message"]
    assert list(message) == ["role", "content", "reasoning"]  # not reasoning_content
    assert message["reasoning"].startswith("Okay, the user")
    assert message["content"].startswith("About What is")
    assert "<think>" not in message["content"]

    for off in ({"reasoning_effort": "none"}, {"reasoning": {"effort": "none"}}):
        _, body = await standin.v1({"model": "qwen3:8b", "messages": USER_HI, **off})
        assert "reasoning" not in body["choices"][0]["message"], off


async def test_reasoning_effort_changes_reasoning_length(standin: Standin) -> None:
    lengths = {}
    for effort in ("low", "max"):
        _, body = await standin.v1(
            {"model": "qwen3:8b", "messages": USER_HI, "seed": 3, "reasoning_effort": effort}
        )
        lengths[effort] = len(body["choices"][0]["message"]["reasoning"].split())
    assert lengths["low"] < lengths["max"]


async def test_stream_current_format(standin: Standin) -> None:
    payloads = await standin.v1_stream({"model": "llama3.2", "messages": USER_HI, "seed": 2})
    assert payloads[-1] == "[DONE]"
    chunks = chunks_of(payloads)
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    for c in chunks:
        assert c["object"] == "chat.completion.chunk"
        assert c["model"] == "llama3.2" and c["system_fingerprint"] == "fp_ollama"
        assert "usage" not in c  # no include_usage, no usage key anywhere
    ds = deltas(chunks)
    assert ds[0]["role"] == "assistant"
    assert all("role" not in d for d in ds[1:])
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    text = "".join(d.get("content", "") for d in ds)
    assert text.startswith("About What is the capital of France:")
    # One token per chunk: each content delta is one word.
    assert all(len(d["content"].split()) == 1 for d in ds[:-1])


async def test_stream_usage_chunk_only_with_include_usage(standin: Standin) -> None:
    body = {"model": "llama3.2", "messages": USER_HI, "seed": 2}
    payloads = await standin.v1_stream({**body, "stream_options": {"include_usage": True}})
    chunks = chunks_of(payloads)
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert set(usage_chunk["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert payloads[-1] == "[DONE]"
    _, single = await standin.v1({**body, "temperature": 1.0, "top_p": 1.0})
    assert usage_chunk["usage"] == single["usage"]  # same inputs, same counts


async def test_stream_reasoning_is_split_from_content(standin: Standin) -> None:
    chunks = chunks_of(await standin.v1_stream({"model": "qwen3:8b", "messages": USER_HI}))
    ds = deltas(chunks)[:-1]
    assert ds[0] == {"role": "assistant", "content": "", "reasoning": "Okay,"}
    thinking = [d for d in ds if "reasoning" in d]
    content = [d for d in ds if d.get("content")]
    # Reasoning chunks carry content "" except the split one, which has no content key.
    assert any("content" not in d for d in thinking)
    assert all(d.get("content", "") == "" for d in thinking)
    assert all("reasoning" not in d for d in content)
    last_reasoning = max(i for i, d in enumerate(ds) if "reasoning" in d)
    first_content = min(i for i, d in enumerate(ds) if d.get("content"))
    assert last_reasoning + 1 == first_content


async def test_tool_call_non_stream(standin: Standin) -> None:
    _, body = await standin.v1({"model": "llama3.2", "messages": ASK_TOOL, "tools": TOOLS})
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == ""
    (call,) = choice["message"]["tool_calls"]
    assert list(call) == ["id", "index", "type", "function"]
    assert re.fullmatch(r"call_[a-z0-9]{8}", call["id"])
    assert call["index"] == 0 and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert isinstance(call["function"]["arguments"], str)
    args = json.loads(call["function"]["arguments"])
    assert args["city"] == "Tokyo" and isinstance(args["days"], int)
    assert call["function"]["arguments"] == json.dumps(args, separators=(",", ":"), sort_keys=True)


async def test_tool_call_stream_arrives_whole(standin: Standin) -> None:
    chunks = chunks_of(
        await standin.v1_stream({"model": "qwen3:8b", "messages": ASK_TOOL, "tools": TOOLS})
    )
    with_calls = [d for d in deltas(chunks) if "tool_calls" in d]
    assert len(with_calls) == 1
    (call,) = with_calls[0]["tool_calls"]
    assert json.loads(call["function"]["arguments"])["city"] == "Tokyo"
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}


async def test_no_tool_call_unless_asked_or_after_a_tool_result(standin: Standin) -> None:
    _, body = await standin.v1({"model": "llama3.2", "messages": USER_HI, "tools": TOOLS})
    assert body["choices"][0]["finish_reason"] == "stop"
    history = [
        *ASK_TOOL,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Tokyo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    _, body = await standin.v1({"model": "llama3.2", "messages": history, "tools": TOOLS})
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"]


async def test_legacy_stream_format(standin: Standin) -> None:
    await standin.patch(legacy_stream=True)
    payloads = await standin.v1_stream(
        {"model": "qwen3:8b", "messages": USER_HI, "stream_options": {"include_usage": True}}
    )
    assert payloads[-1] == "[DONE]"
    chunks = chunks_of(payloads)
    ds = deltas(chunks)
    assert all(d["role"] == "assistant" and "content" in d for d in ds)  # role everywhere
    assert any(d.get("reasoning") and d["content"] for d in ds)  # mixed chunk not split
    finish = chunks[-2]
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {"role": "assistant", "content": ""},
        "finish_reason": "stop",
    }
    assert chunks[-1]["choices"] == [] and "usage" in chunks[-1]


async def test_legacy_stream_tool_call_finish(standin: Standin) -> None:
    await standin.patch(legacy_stream=True)
    chunks = chunks_of(
        await standin.v1_stream({"model": "llama3.2", "messages": ASK_TOOL, "tools": TOOLS})
    )
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_think_tags_in_content(standin: Standin) -> None:
    await standin.patch(think_tags_in_content=True)
    _, body = await standin.v1({"model": "qwen3:8b", "messages": USER_HI})
    message = body["choices"][0]["message"]
    assert "reasoning" not in message
    assert message["content"].startswith("<think>\nOkay, the user")
    assert "\n</think>\n\nAbout What is" in message["content"]
    payloads = await standin.v1_stream({"model": "qwen3:8b", "messages": USER_HI})
    assert all('"reasoning"' not in p for p in payloads)
    assert "\\u003cthink\\u003e" in payloads[0]  # Go escapes < and > in JSON strings


@pytest.mark.parametrize(
    ("body", "status", "message", "kind"),
    [
        (None, 400, "EOF", "invalid_request_error"),
        ("{bad", 400, "invalid character 'b' looking for beginning of object key string", None),
        ({"model": "llama3.2"}, 400, "[] is too short - 'messages'", None),
        ({"model": "llama3.2", "messages": []}, 400, "[] is too short - 'messages'", None),
        ({"messages": USER_HI}, 400, "model is required", "invalid_request_error"),
        ({"model": "nosuch", "messages": USER_HI}, 404, "model 'nosuch' not found", None),
        (
            {"model": "llama3.2", "messages": USER_HI, "reasoning_effort": "high"},
            400,
            '"llama3.2" does not support thinking',
            None,
        ),
        (
            {"model": "llama3.2", "messages": [{"role": "user", "content": None}]},
            400,
            "invalid message content type: <nil>",
            None,
        ),
        (
            {
                "model": "llama3.2",
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                    }
                ],
            },
            400,
            "image URLs are not currently supported, please use base64 encoded data instead",
            None,
        ),
        (
            {"model": "llama3.2", "messages": USER_HI, "max_tokens": "5"},
            400,
            "json: cannot unmarshal string into Go struct field "
            "ChatCompletionRequest.max_tokens of type int",
            None,
        ),
    ],
)
async def test_errors_use_the_openai_envelope(
    standin: Standin, body: object, status: int, message: str, kind: str | None
) -> None:
    data = b"" if body is None else body.encode() if isinstance(body, str) else json.dumps(body)
    async with standin.http.post(standin.base_url + "/v1/chat/completions", data=data) as resp:
        assert resp.status == status
        assert resp.headers["Content-Type"] == "application/json"
        got = await resp.json()
    expected_kind = kind or {400: "invalid_request_error", 404: "not_found_error"}[status]
    envelope = {"message": message, "type": expected_kind, "param": None, "code": None}
    assert got == {"error": envelope}


async def test_pre_v018_error_types_and_old_not_found_text(standin: Standin) -> None:
    await standin.patch(api_error_only=True, old_not_found_message=True)
    status, body = await standin.v1({"model": "x", "messages": USER_HI})
    assert status == 404
    assert body["error"] == {
        "message": 'model "x" not found, try pulling it first',
        "type": "api_error",
        "param": None,
        "code": None,
    }
    status, body = await standin.v1({"messages": USER_HI})
    assert (status, body["error"]["type"]) == (400, "api_error")  # handler error
    status, body = await standin.v1({"model": "x", "messages": []})
    assert (status, body["error"]["type"]) == (400, "invalid_request_error")  # middleware


async def test_content_parts_and_base64_image(standin: Standin) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe this picture"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        }
    ]
    status, body = await standin.v1({"model": "llama3.2", "messages": messages})
    assert status == 200
    assert body["choices"][0]["message"]["content"].startswith("About Describe this picture:")
