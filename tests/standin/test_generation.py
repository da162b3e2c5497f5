"""Deterministic generation: what gateway tests can rely on, and what must vary."""

from __future__ import annotations

from typing import Any

from services.ollama_standin.generation import GenerationInput, generate, split_tokens

from .conftest import USER_HI, Standin, chunks_of

BASE: dict[str, Any] = {"model": "llama3.2", "messages": USER_HI}


async def content_of(standin: Standin, **extra: Any) -> tuple[str, str]:
    _, body = await standin.v1({**BASE, **extra})
    choice = body["choices"][0]
    return choice["message"]["content"], choice["finish_reason"]


async def test_same_inputs_same_text_with_seed_or_greedy(standin: Standin) -> None:
    assert await content_of(standin, seed=42) == await content_of(standin, seed=42)
    assert await content_of(standin, temperature=0) == await content_of(standin, temperature=0)
    # Greedy decoding does not depend on the seed.
    assert await content_of(standin, temperature=0, seed=1) == await content_of(
        standin, temperature=0, seed=2
    )


async def test_temperature_top_p_and_seed_change_the_text(standin: Standin) -> None:
    texts = {
        await content_of(standin, seed=42, temperature=0.2),
        await content_of(standin, seed=42, temperature=0.9),
        await content_of(standin, seed=42, temperature=0.9, top_p=0.5),
        await content_of(standin, seed=43, temperature=0.9),
    }
    assert len(texts) == 4


async def test_unseeded_sampling_varies(standin: Standin) -> None:
    texts = {await content_of(standin) for _ in range(4)}  # default temperature 1.0
    assert len(texts) > 1


async def test_answer_starts_from_the_last_user_message(standin: Standin) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "Second question, about llamas!"},
    ]
    text, reason = await content_of(standin, messages=messages, seed=1)
    assert text.startswith("About Second question about llamas:")
    assert reason == "stop"
    assert 8 <= len(split_tokens(text)) <= 30


async def test_max_tokens_caps_and_reports_length(standin: Standin) -> None:
    text, reason = await content_of(standin, seed=5, max_tokens=3)
    assert reason == "length"
    assert text == "About What is"
    _, body = await standin.v1({**BASE, "seed": 5, "max_tokens": 3})
    assert body["usage"]["completion_tokens"] == 3
    chunks = chunks_of(await standin.v1_stream({**BASE, "seed": 5, "max_tokens": 3}))
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert len([c for c in chunks if c["choices"][0]["delta"].get("content")]) == 3


async def test_max_tokens_counts_thinking_tokens(standin: Standin) -> None:
    _, body = await standin.v1({"model": "qwen3:8b", "messages": USER_HI, "max_tokens": 4})
    message = body["choices"][0]["message"]
    assert body["choices"][0]["finish_reason"] == "length"
    assert message["content"] == ""  # the budget went on reasoning, as with real qwen3
    assert message["reasoning"] == "Okay, the user mentions"


async def test_stop_sequences_truncate(standin: Standin) -> None:
    full, _ = await content_of(standin, seed=9)
    text, reason = await content_of(standin, seed=9, stop="capital")
    assert reason == "stop"
    assert text == "About What is the "
    # A stop sequence spanning tokens: nothing from its start is sent.
    text, _ = await content_of(standin, seed=9, stop=["s the cap", 7])
    assert text == "About What i"
    assert full.startswith(text)


async def test_chinese_round_trip(standin: Standin) -> None:
    messages = [{"role": "user", "content": "你好，请介绍一下北京。"}]
    async with standin.http.post(
        standin.base_url + "/v1/chat/completions",
        json={"model": "llama3.2", "messages": messages, "seed": 1},
    ) as resp:
        raw = await resp.read()
    assert "关于「你好，请介绍一下」".encode() in raw  # raw UTF-8, not \\u escapes
    chunks = chunks_of(await standin.v1_stream({"model": "qwen3:8b", "messages": messages}))
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    content = "".join(d.get("content", "") for d in deltas)
    reasoning = "".join(d.get("reasoning", "") for d in deltas)
    assert content.startswith("关于「你好，请介绍一下」：") and content.endswith("。")
    assert reasoning.startswith("好的，用户问")
    # One CJK character per token/chunk.
    assert all(len(d["content"]) == 1 for d in deltas if d.get("content"))


def test_generate_is_a_pure_function_of_its_inputs() -> None:
    inp = GenerationInput(model="m", messages=USER_HI, temperature=0.7, top_p=0.9, seed=3)
    first, second = generate(inp), generate(inp)
    assert first.content == second.content and first.eval_count == second.eval_count
    assert first.prompt_tokens > 0


def test_json_format_yields_json() -> None:
    import json

    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    inp = GenerationInput(model="m", messages=USER_HI, temperature=0, top_p=1, format=schema)
    value = json.loads(generate(inp).content)
    assert set(value) == {"name", "age"} and isinstance(value["age"], int)
