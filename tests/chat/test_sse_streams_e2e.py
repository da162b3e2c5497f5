"""SSE streams through Envoy when the chat service writes several frames as one gRPC
message (services/chat/sse_writer.py): many streams at once, a worker that sends its tokens
as fast as it can, and every stream still arrives whole, frame by frame and in order,
ending with [DONE]; the openai SDK parses the same streams."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
import requests

from clawgate.launcher.stack import Stack

STREAMS = 16
Json = dict[str, Any]


@pytest.fixture
def fast_worker(stack: Stack) -> Iterator[Stack]:
    """The main stand-in without a pause between tokens, reset afterwards."""
    url = stack.standins["main"]
    requests.post(url + "/_standin/reset", timeout=5).raise_for_status()
    reply = requests.patch(url + "/_standin/settings", json={"token_delay_ms": 0}, timeout=5)
    reply.raise_for_status()
    yield stack
    requests.post(url + "/_standin/reset", timeout=5).raise_for_status()


def body(prompt: str, **fields: Any) -> Json:
    # temperature 0: the stand-in answers a prompt the same way every time.
    return {
        "model": "llama3.2:latest",
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": 40,
        **fields,
    }


def post(stack: Stack, payload: Json, **kwargs: Any) -> requests.Response:
    return requests.post(
        stack.rest_url + "/api/v1/chat/completions",
        json=payload,
        headers={"Authorization": f"Bearer {stack.token}", "Cache-Control": "no-store"},
        timeout=30,
        **kwargs,
    )


def data_frames(raw: bytes) -> list[str]:
    """The stream's `data:` payloads in order; every frame must be whole."""
    text = raw.decode()
    assert text.endswith("\n\n"), text[-200:]
    frames = text[:-2].split("\n\n")
    for frame in frames:
        assert frame.startswith(("data: ", ":")), frame  # data, or a keep-alive comment
    return [f[6:] for f in frames if f.startswith("data: ")]


def read_stream(stack: Stack, prompt: str) -> list[str]:
    reply = post(stack, body(prompt, stream=True), stream=True)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/event-stream")
    return data_frames(b"".join(reply.iter_content(chunk_size=None)))


def test_many_fast_streams_arrive_whole_and_in_order(fast_worker: Stack) -> None:
    prompts = [f"Tell story {i} [{uuid.uuid4().hex[:8]}]" for i in range(STREAMS)]
    expected = {}
    for prompt in prompts:  # the same answers without streaming, one by one
        reply = post(fast_worker, body(prompt))
        assert reply.status_code == 200, reply.text
        expected[prompt] = reply.json()["choices"][0]["message"]["content"]
    with ThreadPoolExecutor(STREAMS) as pool:
        read = pool.map(lambda p: read_stream(fast_worker, p), prompts)
        streams = dict(zip(prompts, read, strict=True))
    for prompt, payloads in streams.items():
        assert payloads[-1] == "[DONE]"
        chunks = [json.loads(p) for p in payloads[:-1]]
        assert len({c["id"] for c in chunks}) == 1
        deltas = [c["choices"][0]["delta"] for c in chunks]
        assert deltas[0] == {"role": "assistant", "content": ""}
        # Every token is its own frame, in the worker's order: coalescing merges
        # messages, never frames.
        pieces = [d["content"] for d in deltas[1:-1]]
        assert len(pieces) > 5 and all(pieces)
        assert "".join(pieces) == expected[prompt]
        assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_the_openai_sdk_reads_fast_streams(fast_worker: Stack) -> None:
    client = openai.OpenAI(
        base_url=fast_worker.rest_url + "/api/v1", api_key=fast_worker.token, max_retries=0
    )
    prompts = [f"Tell story {i} [{uuid.uuid4().hex[:8]}]" for i in range(4)]

    def text_of(prompt: str) -> tuple[str, str]:
        messages: Any = [{"role": "user", "content": prompt}]
        chunks = list(
            client.chat.completions.create(
                model="llama3.2:latest", messages=messages, temperature=0, stream=True
            )
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        whole = client.chat.completions.create(
            model="llama3.2:latest", messages=messages, temperature=0
        )
        return streamed, whole.choices[0].message.content or ""

    with ThreadPoolExecutor(len(prompts)) as pool:
        for streamed, whole in pool.map(text_of, prompts):
            assert streamed and streamed == whole
