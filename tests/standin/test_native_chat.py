"""POST /api/chat against §3 of the notes: NDJSON, stream:false, thinking, tools, load."""

from __future__ import annotations

import re

from .conftest import ASK_TOOL, TOOLS, USER_HI, Standin

RFC3339NANO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z"
METRICS = [
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
]


async def test_ndjson_stream_by_default(standin: Standin) -> None:
    lines = await standin.native_stream({"model": "llama3.2", "messages": USER_HI})
    *parts, done = lines
    for line in parts:
        assert list(line) == ["model", "created_at", "message", "done"]
        assert line["model"] == "llama3.2" and line["done"] is False
        assert re.fullmatch(RFC3339NANO_UTC, line["created_at"])
        assert line["message"]["role"] == "assistant"
    assert "".join(p["message"]["content"] for p in parts).startswith("About What is")
    assert list(done) == ["model", "created_at", "message", "done", "done_reason", *METRICS]
    assert done["message"] == {"role": "assistant", "content": ""}
    assert done["done"] is True and done["done_reason"] == "stop"
    assert done["eval_count"] == len(parts)
    assert all(isinstance(done[k], int) and done[k] > 0 for k in METRICS)


async def test_stream_false_single_object(standin: Standin) -> None:
    async with standin.http.post(
        standin.base_url + "/api/chat",
        json={"model": "qwen3:8b", "messages": USER_HI, "stream": False},
    ) as resp:
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        body = await resp.json()
    assert body["done"] is True and body["done_reason"] == "stop"
    assert body["message"]["thinking"].startswith("Okay, the user")
    assert body["message"]["content"].startswith("About What is")


async def test_thinking_stream_and_think_false(standin: Standin) -> None:
    lines = await standin.native_stream({"model": "qwen3:8b", "messages": USER_HI})
    assert lines[0]["message"] == {"role": "assistant", "content": "", "thinking": "Okay,"}
    mixed = [ln for ln in lines if ln["message"].get("thinking") and ln["message"]["content"]]
    assert len(mixed) == 1  # the transition chunk carries both fields natively
    lines = await standin.native_stream({"model": "qwen3:8b", "messages": USER_HI, "think": False})
    assert all("thinking" not in ln["message"] for ln in lines)


async def test_think_validation(standin: Standin) -> None:
    status, body = await standin.native({"model": "qwen3:8b", "messages": USER_HI, "think": "x"})
    assert status == 400
    assert body == {
        "error": 'invalid think value: "x" (must be "high", "medium", "low", "max", true, or false)'
    }
    status, body = await standin.native({"model": "llama3.2", "messages": USER_HI, "think": True})
    assert (status, body) == (400, {"error": '"llama3.2" does not support thinking'})
    status, _ = await standin.native(
        {"model": "llama3.2", "messages": USER_HI, "think": False, "stream": False}
    )
    assert status == 200


async def test_native_tool_call_arguments_are_an_object(standin: Standin) -> None:
    status, body = await standin.native(
        {"model": "llama3.2", "messages": ASK_TOOL, "tools": TOOLS, "stream": False}
    )
    assert status == 200
    assert body["done_reason"] == "stop"  # natively "stop"; /v1 turns it into tool_calls
    (call,) = body["message"]["tool_calls"]
    assert re.fullmatch(r"call_[a-z0-9]{8}", call["id"])
    assert call["function"]["index"] == 0 and call["function"]["name"] == "get_weather"
    assert call["function"]["arguments"]["city"] == "Tokyo"


async def test_options_reach_generation(standin: Standin) -> None:
    body = {"model": "llama3.2", "messages": USER_HI, "stream": False}
    _, capped = await standin.native({**body, "options": {"num_predict": 2, "seed": 1}})
    assert capped["done_reason"] == "length" and capped["message"]["content"] == "About What"
    _, a = await standin.native({**body, "options": {"temperature": 0.1, "seed": 1}})
    _, b = await standin.native({**body, "options": {"temperature": 0.1, "seed": 1}})
    _, c = await standin.native({**body, "options": {"temperature": 0.6, "seed": 1}})
    assert a["message"] == b["message"] != c["message"]
    _, stopped = await standin.native({**body, "options": {"seed": 1, "stop": ["capital"]}})
    assert stopped["message"]["content"] == "About What is the "


async def test_native_errors(standin: Standin) -> None:
    async with standin.http.post(standin.base_url + "/api/chat", data=b"") as resp:
        assert resp.status == 400
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        assert await resp.json() == {"error": "missing request body"}
    assert await standin.native({"messages": USER_HI}) == (400, {"error": "model is required"})
    assert await standin.native({"model": "gone:1b", "messages": USER_HI}) == (
        404,
        {"error": "model 'gone:1b' not found"},
    )
    status, body = await standin.native(
        {"model": "llama3.2", "messages": USER_HI, "options": {"temperature": "hot"}}
    )
    assert (status, body) == (500, {"error": 'option "temperature" must be of type float32'})


async def test_empty_messages_load_and_unload(standin: Standin) -> None:
    status, body = await standin.native({"model": "qwen3:8b"})
    assert status == 200
    assert body["done_reason"] == "load" and body["message"] == {
        "role": "assistant",
        "content": "",
    }
    async with standin.http.get(standin.base_url + "/api/ps") as resp:
        assert [m["name"] for m in (await resp.json())["models"]] == ["qwen3:8b"]
    status, body = await standin.native({"model": "qwen3:8b", "keep_alive": 0})
    assert body["done_reason"] == "unload"
    async with standin.http.get(standin.base_url + "/api/ps") as resp:
        assert (await resp.json())["models"] == []
