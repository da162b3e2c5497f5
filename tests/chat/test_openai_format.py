"""Wire objects: chunk order, aggregation, cache replay, SSE frames, <think> stripping."""

from __future__ import annotations

import json

import pytest

from clawgate.common.errors import ApiError
from services.chat.openai_format import (
    DONE_FRAME,
    Aggregator,
    ChunkEncoder,
    completion_to_deltas,
    error_frame,
    restamp,
    sse_frame,
)
from services.chat.providers.base import Delta, Usage
from services.chat.providers.think_tags import ThinkTagSplitter


def stream(*deltas: Delta, include_usage: bool = True) -> list[dict[str, object]]:
    encoder = ChunkEncoder("qwen3:32b", include_usage=include_usage)
    chunks = [c for d in deltas for c in encoder.encode(d)]
    return chunks + encoder.end()


def test_chunks_follow_openai_order() -> None:
    chunks = stream(
        Delta(reasoning="hmm"),
        Delta(content="Hel"),
        Delta(content="lo"),
        Delta(finish_reason="stop"),
        Delta(usage=Usage(3, 2)),
    )
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]  # type: ignore[index]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"reasoning": "hmm"},
        {"content": "Hel"},
        {"content": "lo"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * 4 + ["stop"]  # type: ignore[index]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert len({c["id"] for c in chunks}) == 1 and str(chunks[0]["id"]).startswith("chatcmpl-")
    assert all(
        isinstance(c["created"], int) and c["object"] == "chat.completion.chunk" for c in chunks
    )


def test_no_usage_chunk_unless_asked() -> None:
    chunks = stream(
        Delta(content="x"),
        Delta(finish_reason="stop"),
        Delta(usage=Usage(1, 1)),
        include_usage=False,
    )
    assert all("usage" not in c for c in chunks)


def test_tool_calls_turn_stop_into_tool_calls() -> None:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"},
    }
    chunks = stream(Delta(tool_calls=[call]), Delta(finish_reason="stop"))
    assert chunks[1]["choices"][0]["delta"] == {"tool_calls": [call]}  # type: ignore[index]
    assert chunks[2]["choices"][0]["finish_reason"] == "tool_calls"  # type: ignore[index]


def test_aggregation_merges_tool_call_fragments() -> None:
    aggregator = Aggregator()
    for delta in [
        Delta(reasoning="think "),
        Delta(
            tool_calls=[
                {
                    "index": 0,
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"a"'},
                }
            ]
        ),
        Delta(tool_calls=[{"index": 0, "function": {"arguments": ": 1}"}}]),
        Delta(finish_reason="stop"),
    ]:
        aggregator.add(delta)
    completion = aggregator.completion("m", Usage(1, 2))
    message = completion["choices"][0]["message"]
    assert message["content"] is None and message["reasoning"] == "think "
    assert message["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ]
    assert completion["choices"][0]["finish_reason"] == "tool_calls"
    assert completion["usage"]["total_tokens"] == 3


def test_replayed_answer_aggregates_to_the_same_answer() -> None:
    aggregator = Aggregator()
    for delta in [
        Delta(content="你好", reasoning="r"),
        Delta(finish_reason="length"),
        Delta(usage=Usage(4, 5)),
    ]:
        aggregator.add(delta)
    original = aggregator.completion("m", Usage(4, 5))
    again = Aggregator()
    for delta in completion_to_deltas(original):
        again.add(delta)
    replayed = again.completion("m", again.usage or Usage(0, 0))
    assert replayed["choices"] == original["choices"]
    assert replayed["usage"] == original["usage"]
    assert replayed["id"] != original["id"]
    fresh = restamp(original, "agent:x")
    assert fresh["id"] != original["id"] and fresh["model"] == "agent:x"


def test_sse_frames_are_utf8_and_terminated() -> None:
    frame = sse_frame({"content": "你好"})
    assert frame == 'data: {"content":"你好"}\n\n'.encode()
    assert DONE_FRAME == b"data: [DONE]\n\n"
    body = json.loads(error_frame(ApiError(502, "cut", code="upstream_incomplete"))[6:])
    assert body == {
        "error": {
            "message": "cut",
            "type": "api_error",
            "param": None,
            "code": "upstream_incomplete",
        }
    }


def split(pieces: list[str]) -> tuple[str, str]:
    splitter = ThinkTagSplitter()
    reasoning, content = "", ""
    for piece in pieces:
        r, c = splitter.feed(piece)
        reasoning, content = reasoning + r, content + c
    r, c = splitter.flush()
    return reasoning + r, content + c


@pytest.mark.parametrize(
    "pieces",
    [
        ["<think>plan</think>\n\nAnswer"],
        ["<thi", "nk>pl", "an</th", "ink>", "\n\nAns", "wer"],
        ["\n<think>", "plan", "</think>", "Answer"],
    ],
)
def test_leading_think_block_moves_to_reasoning(pieces: list[str]) -> None:
    assert split(pieces) == ("plan", "Answer")


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        (["Plain answer"], ("", "Plain answer")),
        (["<b>bold</b>"], ("", "<b>bold</b>")),
        (["Say <think>x</think>"], ("", "Say <think>x</think>")),
        (["<think>never closed"], ("never closed", "")),
        (["<th"], ("", "<th")),
    ],
)
def test_other_content_is_untouched(pieces: list[str], expected: tuple[str, str]) -> None:
    assert split(pieces) == expected


def test_usage_details_and_server_extras_survive_a_cache_round_trip() -> None:
    usage = {
        "prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 16},
        "completion_tokens_details": {"reasoning_tokens": 5},
    }  # fmt: skip
    extra = {"system_fingerprint": "fp_x", "timings": {"predicted_n": 9}}
    first = Aggregator()
    for delta in (
        Delta(content="hi", reasoning="hmm", extra={"system_fingerprint": "fp_x"}),
        Delta(finish_reason="stop", extra={"system_fingerprint": "fp_x", "model": "/x.gguf"}),
        Delta(usage=Usage.from_json(usage), extra=extra),
    ):
        first.add(delta)
    assert first.usage is not None
    completion = first.completion("m", first.usage)
    assert completion["usage"] == usage
    assert {k: completion[k] for k in extra} == extra
    # The gateway's own fields are never overwritten by an upstream's.
    assert completion["model"] == "m" and completion["object"] == "chat.completion"
    replayed = stream(*completion_to_deltas(restamp(completion, "m")))
    assert {c["system_fingerprint"] for c in replayed} == {"fp_x"}
    assert replayed[-1]["usage"] == usage and replayed[-1]["timings"] == {"predicted_n": 9}


def test_frames_keep_non_ascii_raw_and_take_what_orjson_cannot() -> None:
    # orjson encodes the usual answer; an upstream extra beyond 64 bits goes through json.
    for value in ({"content": "你好"}, {"content": "你好", "seed": 2**70}):
        frame = sse_frame(value)
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
        assert "你好".encode() in frame
        assert json.loads(frame[6:]) == value
