"""Chat through Envoy with the openai SDK, answered by a real model (llama.cpp + SmolLM2)."""

from __future__ import annotations

import re
import time
from typing import Any

import openai
import pytest
import requests
from openai.types.chat import ChatCompletionMessageParam

from tests.realmodel import llama
from tests.realmodel.conftest import KEYED_ALIAS, NO_CACHE, RealModel, wait_for

llama.require()


def user(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


HELLO = user("Say hello in five words.")


def test_unary_chat_answers_with_usage_that_adds_up(real: RealModel) -> None:
    reply = real.client().chat.completions.create(
        model=real.model,
        messages=HELLO,
        max_tokens=16,
        extra_headers=NO_CACHE,
    )
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.model == real.model
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    usage = reply.usage
    assert usage is not None
    assert 0 < usage.completion_tokens <= 16 and usage.prompt_tokens > 5
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streaming_chat_matches_openai_and_counts_the_same_prompt(real: RealModel) -> None:
    client = real.client()
    stream = client.chat.completions.create(
        model=real.model, messages=HELLO, max_tokens=16, stream=True,
        stream_options={"include_usage": True}, extra_headers=NO_CACHE,
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish in (["stop"], ["length"])
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    unary = client.chat.completions.create(
        model=real.model,
        messages=HELLO,
        max_tokens=1,
        extra_headers=NO_CACHE,
    )
    assert unary.usage is not None and unary.usage.prompt_tokens == usage.prompt_tokens


def test_max_tokens_stops_the_model_with_finish_reason_length(real: RealModel) -> None:
    messages = user("Count from one to one hundred in words.")
    reply = real.client().chat.completions.create(
        model=real.model,
        messages=messages,
        max_tokens=3,
        extra_headers=NO_CACHE,
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 3


def test_temperature_and_seed_reach_the_model(real: RealModel) -> None:
    # R19: greedy decoding repeats itself; a hot temperature with different seeds does not.
    messages = user("Write one sentence about the sea.")

    def answer(**sampling: Any) -> str:
        reply = real.client().chat.completions.create(
            model=real.model, messages=messages, max_tokens=24,
            extra_headers=NO_CACHE, **sampling,
        )  # fmt: skip
        return reply.choices[0].message.content or ""

    greedy = answer(temperature=0)
    assert answer(temperature=0, seed=5) == greedy
    hot = {answer(temperature=1.5, seed=seed) for seed in (1, 2, 3)}
    assert len(hot) > 1 and hot != {greedy}, (greedy, hot)


def test_the_keyed_worker_answers_with_its_key(real: RealModel) -> None:
    reply = real.client().chat.completions.create(
        model=KEYED_ALIAS,
        messages=HELLO,
        max_tokens=4,
        extra_headers=NO_CACHE,
    )
    assert reply.model == KEYED_ALIAS and reply.choices[0].message.content


@pytest.mark.parametrize("stream", [False, True])
def test_a_prompt_longer_than_the_servers_context_is_context_length_exceeded(
    real: RealModel, stream: bool
) -> None:
    # 1,500 words against llama-server's 1,024-token slots (the config allows 32,000):
    # the server's own refusal reaches the client as OpenAI's error.
    messages = user("word " * 1500)
    with pytest.raises(openai.BadRequestError) as caught:
        reply = real.client().chat.completions.create(
            model=real.model, messages=messages, max_tokens=4, stream=stream,
            extra_headers=NO_CACHE,
        )  # fmt: skip
        if stream:
            list(reply)
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert "exceeds the available context size" in error["message"]
    assert "ollama" not in error["message"]


def cancelled_tasks(log: str) -> dict[int, int]:
    """llama-server tasks cancelled by a disconnect → tokens in their slot at release."""
    cancelled = {int(t) for t in re.findall(r"cancel task, id_task = (\d+)", log)}
    released = re.findall(r"task (\d+) \| stop processing: n_tokens = (\d+)", log)
    return {int(t): int(n) for t, n in released if int(t) in cancelled and int(n) > 0}


def test_cancelling_a_stream_stops_generation_on_the_server(real: RealModel) -> None:
    before = set(cancelled_tasks(real.plain.log()))
    messages = user("Tell a very long story about a dragon.")
    with requests.post(
        real.stack.rest_url + "/api/v1/chat/completions",
        headers={**real.auth(), **NO_CACHE},
        json={"model": real.model, "messages": messages, "max_tokens": 500, "stream": True,
              "temperature": 0},
        stream=True,
        timeout=60,
    ) as reply:  # fmt: skip
        assert reply.status_code == 200
        lines = reply.iter_lines()
        wait_for(lambda: b"content" in next(lines), "the first content chunk")
    # The client is gone: llama-server logs `srv stop: cancel task, id_task = N` and frees
    # the slot long before 500 tokens could have been generated.
    new = wait_for(
        lambda: {t: n for t, n in cancelled_tasks(real.plain.log()).items() if t not in before},
        "llama-server to cancel the task",
    )
    assert all(tokens < 500 for tokens in new.values()), new
    assert not any(slot["is_processing"] for slot in real.plain.get("/slots"))


def test_server_fields_pass_through_also_from_the_cache(real: RealModel) -> None:
    # system_fingerprint, usage details and llama.cpp's `timings` reach OpenAI clients.
    build = real.plain.get("/props")["build_info"]
    client = real.client()
    messages = user(f"Name a colour. ({time.time_ns()})")  # a prompt never cached before
    first = client.chat.completions.with_raw_response.create(
        model=real.model, messages=messages, max_tokens=6
    )
    assert first.headers["x-cache"] == "MISS"
    replay = client.chat.completions.with_raw_response.create(
        model=real.model, messages=messages, max_tokens=6
    )
    assert replay.headers["x-cache"] == "HIT"
    for reply in (first.parse(), replay.parse()):
        assert reply.system_fingerprint == build
        assert reply.usage and reply.usage.prompt_tokens_details
        assert isinstance(reply.usage.prompt_tokens_details.cached_tokens, int)
        timings = (reply.model_extra or {})["timings"]
        assert timings["predicted_n"] == reply.usage.completion_tokens
    for cache in ("MISS", "HIT"):  # from the server, then replayed from the cache
        streamed = client.chat.completions.with_raw_response.create(
            model=real.model, messages=messages, max_tokens=6, stream=True,
            stream_options={"include_usage": True},
            extra_headers=NO_CACHE if cache == "MISS" else {},
        )  # fmt: skip
        assert streamed.headers["x-cache"] == cache
        chunks = list(streamed.parse())
        assert {c.system_fingerprint for c in chunks} == {build}
        assert chunks[-1].usage and chunks[-1].usage.prompt_tokens_details
        assert "timings" in (chunks[-1].model_extra or {})


def test_an_agent_on_a_model_named_by_its_path(real: RealModel) -> None:
    name = f"path-agent-{time.time_ns()}"
    created = requests.post(
        real.stack.rest_url + "/api/v1/agents",
        headers=real.auth(),
        json={"name": name, "description": "llama.cpp by path", "model": real.model,
              "config": {"max_tokens": 3}},
        timeout=10,
    )  # fmt: skip
    assert created.status_code == 200, created.text
    assert created.json()["model"] == real.model
    reply = real.client().chat.completions.create(
        model=f"agent:{name}", messages=user("Count to twenty."), extra_headers=NO_CACHE
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 3
