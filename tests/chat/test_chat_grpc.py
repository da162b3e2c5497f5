"""The chat servicer in-process, through real gRPC channels, against stand-in workers."""

from __future__ import annotations

import json
from typing import Any

from clawgate.chat.v1 import chat_service_pb2 as pb
from tests.chat.conftest import AUTH, NO_CACHE, ChatEnv, http_call, params, sse_chunks, user


async def test_http_json_answer_is_one_openai_object(chat: ChatEnv) -> None:
    messages, headers = await http_call(
        chat,
        {"model": "llama3.2:latest", "messages": user("你好，介绍一下你自己"), "max_tokens": 40},
    )
    assert len(messages) == 1 and messages[0].content_type == "application/json"
    assert "你好" in messages[0].data.decode()  # raw UTF-8, not \\u escapes
    body = json.loads(messages[0].data)
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert isinstance(body["created"], int) and body["model"] == "llama3.2:latest"
    choice = body["choices"][0]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] and choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert headers["x-cache"] == "MISS"  # no-cache skips the lookup, never the header


async def test_http_stream_is_sse_ending_with_done(chat: ChatEnv) -> None:
    body = {
        "model": "llama3.2:latest",
        "messages": user("stream please"),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    messages, _ = await http_call(chat, body)
    assert {m.content_type for m in messages} == {"text/event-stream"}
    chunks, last = sse_chunks(messages)
    assert last == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.startswith("About stream please")
    assert chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


async def test_typed_unary_and_stream_match_rest(chat: ChatEnv) -> None:
    request = params("llama3.2:latest", "same answer", temperature=0, max_tokens=30)
    unary = await chat.stub.CreateChatCompletion(
        pb.CreateChatCompletionRequest(params=request), metadata=NO_CACHE
    )
    chunks = [
        c
        async for c in chat.stub.StreamChatCompletion(
            pb.StreamChatCompletionRequest(params=request), metadata=NO_CACHE
        )
    ]
    messages, _ = await http_call(
        chat,
        {
            "model": "llama3.2:latest",
            "messages": user("same answer"),
            "temperature": 0,
            "max_tokens": 30,
        },
    )
    rest = json.loads(messages[0].data)
    streamed = "".join(c.choices[0].delta.content for c in chunks if c.choices)
    assert unary.choices[0].message.content.string_value == rest["choices"][0]["message"]["content"]
    assert streamed == rest["choices"][0]["message"]["content"]
    assert unary.usage.total_tokens == rest["usage"]["total_tokens"]
    assert unary.id.startswith("chatcmpl-") and unary.id != rest["id"]


def answer_of(messages: list[Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(messages[0].data)
    return body


async def test_qwen3_reasoning_is_passed_through(chat: ChatEnv) -> None:
    messages, _ = await http_call(chat, {"model": "qwen3:32b", "messages": user("think about it")})
    message = answer_of(messages)["choices"][0]["message"]
    assert message["reasoning"] and "<think>" not in message["content"]
    messages, _ = await http_call(
        chat, {"model": "qwen3:32b", "messages": user("think about it"), "reasoning_effort": "none"}
    )
    assert "reasoning" not in answer_of(messages)["choices"][0]["message"]
    sent = [r["body"] for r in await chat.workers.requests("main")]
    assert sent[-1]["reasoning_effort"] == "none"


async def test_old_servers_think_tags_and_legacy_stream_are_understood(chat: ChatEnv) -> None:
    await chat.workers.patch("main", think_tags_in_content=True, legacy_stream=True)
    body = {"model": "qwen3:32b", "messages": user("old server"), "stream": True}
    chunks, last = sse_chunks((await http_call(chat, body))[0])
    assert last == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    content = "".join(d.get("content", "") for d in deltas)
    reasoning = "".join(d.get("reasoning", "") for d in deltas)
    assert reasoning and content and "<think>" not in content and "</think>" not in content
    assert [d for d in deltas if "role" in d] == [deltas[0]]  # role once, as OpenAI sends it


async def test_openai_fields_reach_the_worker(chat: ChatEnv) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    await http_call(
        chat,
        {
            "model": "llama3.2:latest",
            "messages": user("fields"),
            "temperature": 0.3,
            "top_p": 0.9,
            "max_tokens": 50,
            "stop": ["zz"],
            "seed": 11,
            "frequency_penalty": 0.5,
            "presence_penalty": 0.25,
            "response_format": {"type": "json_object"},
            "tools": tools,
            "user": "someone",
        },
    )
    (record,) = await chat.workers.requests("main")
    sent = record["body"]
    assert record["path"] == "/v1/chat/completions"
    for key, value in {
        "model": "llama3.2:latest",
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 50,
        "stop": ["zz"],
        "seed": 11,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.25,
        "response_format": {"type": "json_object"},
        "tools": tools,
    }.items():
        assert sent[key] == value, key
    assert "user" not in sent and sent["stream"] is True
    assert record["headers"]["authorization"] == "[redacted]"  # the provider key was sent


async def test_native_adapter_sets_context_window_and_max_tokens(chat: ChatEnv) -> None:
    messages, _ = await http_call(
        chat,
        {"model": "gemma3:4b", "messages": user("native"), "max_tokens": 20, "keep_alive": "10m"},
    )
    assert answer_of(messages)["choices"][0]["message"]["content"]
    (record,) = await chat.workers.requests("main")
    assert record["path"] == "/api/chat"
    options = record["body"]["options"]
    assert options["num_ctx"] == 8192 and options["num_predict"] == 20
    assert record["body"]["keep_alive"] == "10m"


async def test_cache_hit_replays_with_new_id_as_json_and_sse(chat: ChatEnv) -> None:
    body = {"model": "llama3.2:latest", "messages": user("cache me"), "max_tokens": 30}
    first, headers1 = await http_call(chat, body, AUTH)
    second, headers2 = await http_call(chat, body, AUTH)
    streamed, headers3 = await http_call(
        chat, {**body, "stream": True, "stream_options": {"include_usage": True}}, AUTH
    )
    assert (headers1["x-cache"], headers2["x-cache"], headers3["x-cache"]) == ("MISS", "HIT", "HIT")
    a, b = answer_of(first), answer_of(second)
    assert a["id"] != b["id"] and a["choices"] == b["choices"] and a["usage"] == b["usage"]
    chunks, last = sse_chunks(streamed)
    assert last == "[DONE]" and chunks[-1]["usage"] == a["usage"]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == a["choices"][0]["message"]["content"]
    assert len(await chat.workers.requests("main")) == 1


async def test_models_list_configured_models_with_availability(chat: ChatEnv) -> None:
    listing = await chat.stub.ListModels(pb.ListModelsRequest(), metadata=AUTH)
    models = {m.id: m for m in listing.data}
    assert listing.object == "list"
    assert set(models) == {"qwen3:32b", "llama3.2:latest", "ghost:7b", "gemma3:4b", "qwen3:8b"}
    qwen = models["qwen3:32b"]
    assert (qwen.provider, qwen.name, qwen.context_window, qwen.max_tokens) == (
        "my-ollama",
        "Local Qwen3 32B",
        32000,
        4096,
    )
    assert qwen.reasoning and qwen.cost.cache_read == 0.06 and qwen.created > 0
    assert qwen.available and models["gemma3:4b"].available and models["qwen3:8b"].available
    assert not models["ghost:7b"].available
    one = await chat.stub.GetModel(pb.GetModelRequest(model="qwen3:32b"), metadata=AUTH)
    assert one.id == "qwen3:32b" and one.object == "model"


async def test_cache_stats_and_purge(chat: ChatEnv) -> None:
    body = {"model": "llama3.2:latest", "messages": user("count me")}
    await http_call(chat, body, AUTH)
    await http_call(chat, body, AUTH)
    stats = await chat.stub.GetCacheStats(pb.GetCacheStatsRequest(), metadata=AUTH)
    assert stats.enabled and stats.hits >= 1 and stats.stores >= 1
    purged = await chat.stub.PurgeCache(
        pb.PurgeCacheRequest(model="llama3.2:latest"), metadata=AUTH
    )
    assert purged.deleted == 1
    _, headers = await http_call(chat, body, AUTH)
    assert headers["x-cache"] == "MISS"
