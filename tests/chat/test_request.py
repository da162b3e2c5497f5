"""Request parsing and validation: one parser for REST bodies and typed gRPC params."""

from __future__ import annotations

from typing import Any

import pytest

from clawgate.common.config import ModelSpec
from clawgate.common.errors import ApiError
from services.chat.limits import apply_model_limits
from services.chat.request import params_to_dict, parse_json_body, parse_request
from tests.chat.conftest import params, user

BASE: dict[str, Any] = {"model": "qwen3:32b", "messages": user("hi")}


def rejected(raw: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_request(raw)
    assert caught.value.status == 400
    return caught.value


def test_minimal_request_is_normalised() -> None:
    request = parse_request({**BASE, "stream": True, "stream_options": {"include_usage": True}})
    assert request.body == {"model": "qwen3:32b", "messages": [{"role": "user", "content": "hi"}]}
    assert request.stream and request.include_usage
    assert request.requested_model == "qwen3:32b"


def test_supported_fields_are_kept_and_normalised() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    raw = {
        **BASE,
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": None, "reasoning_content": "hmm",
             "tool_calls": [{"id": "c1", "type": "function",
                             "function": {"name": "f", "arguments": {"a": 1}}}]},
            {"role": "tool", "content": "42", "tool_call_id": "c1"},
        ],
        "temperature": 0, "top_p": 0.5, "max_completion_tokens": 7, "stop": "END",
        "seed": 3, "frequency_penalty": 1, "presence_penalty": -1,
        "response_format": {"type": "json_object"}, "tools": tools, "tool_choice": "auto",
        "reasoning": {"effort": "none"}, "reasoning_effort": "high", "user": "u1", "n": 1,
    }  # fmt: skip
    body = parse_request(raw).body
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["messages"][2]["content"] is None
    assert body["messages"][2]["reasoning"] == "hmm"
    assert body["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"a": 1}'
    assert body["messages"][3]["tool_call_id"] == "c1"
    assert body["temperature"] == 0.0 and body["top_p"] == 0.5
    assert body["max_tokens"] == 7 and "max_completion_tokens" not in body
    assert body["stop"] == ["END"] and body["seed"] == 3
    assert body["response_format"] == {"type": "json_object"}
    assert body["tools"] == tools and body["tool_choice"] == "auto"
    assert body["reasoning_effort"] == "none"  # reasoning.effort wins, as in ollama
    assert "user" not in body and "n" not in body


@pytest.mark.parametrize(
    ("raw", "param", "code"),
    [
        ({"messages": user("x")}, "model", "missing_required_parameter"),
        ({"model": 5, "messages": user("x")}, "model", "invalid_type"),
        ({"model": "m"}, "messages", "missing_required_parameter"),
        ({**BASE, "messages": []}, "messages", "empty_array"),
        ({**BASE, "messages": "hi"}, "messages", "invalid_type"),
        ({**BASE, "messages": ["hi"]}, "messages[0]", "invalid_type"),
        (
            {**BASE, "messages": [{"role": "robot", "content": "x"}]},
            "messages[0].role",
            "invalid_value",
        ),
        (
            {**BASE, "messages": [{"content": "x"}]},
            "messages[0].role",
            "missing_required_parameter",
        ),
        (
            {**BASE, "messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
            "invalid_type",
        ),
        (
            {**BASE, "messages": [{"role": "user"}]},
            "messages[0].content",
            "missing_required_parameter",
        ),
        (
            {**BASE, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages[0].content[0].type",
            "invalid_value",
        ),
        ({**BASE, "temperature": 2.5}, "temperature", "decimal_above_max_value"),
        ({**BASE, "temperature": -0.1}, "temperature", "decimal_below_min_value"),
        ({**BASE, "temperature": "hot"}, "temperature", "invalid_type"),
        ({**BASE, "top_p": 1.5}, "top_p", "decimal_above_max_value"),
        ({**BASE, "max_tokens": 0}, "max_tokens", "integer_below_min_value"),
        ({**BASE, "max_tokens": "many"}, "max_tokens", "invalid_type"),
        ({**BASE, "n": 2}, "n", "unsupported_value"),
        ({**BASE, "stop": [1]}, "stop", "invalid_type"),
        ({**BASE, "stream": "yes"}, "stream", "invalid_type"),
        ({**BASE, "reasoning_effort": "extreme"}, "reasoning_effort", "invalid_value"),
        ({**BASE, "response_format": {"type": "xml"}}, "response_format.type", "invalid_value"),
        ({**BASE, "tools": [{"type": "function"}]}, "tools[0]", "invalid_value"),
        ({**BASE, "temprature": 0.2}, "temprature", "unknown_parameter"),
        ({**BASE, "functions": [{"name": "f"}]}, "functions", "unsupported_parameter"),
        ({**BASE, "top_logprobs": 30, "logprobs": True}, "top_logprobs", "invalid_value"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(
    raw: dict[str, Any], param: str, code: str
) -> None:
    error = rejected(raw)
    assert error.param == param
    assert error.code == code
    assert error.type == "invalid_request_error"
    assert param.split(".")[0].split("[")[0] in error.message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b'{"model": "x", ', "could not parse"),
        (b"[1, 2]", "must be a JSON object"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_malformed_body_is_a_400(data: bytes, fragment: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_json_body(data)
    assert caught.value.status == 400 and caught.value.code == "invalid_json"
    assert fragment in caught.value.message


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_utf8_body_is_decoded(bom: bytes) -> None:
    text = '{"model":"m","messages":[{"role":"user","content":"你好"}]}'
    raw = parse_json_body(bom + text.encode())
    assert raw["messages"][0]["content"] == "你好"


def test_typed_params_give_the_same_request_as_json() -> None:
    typed = params("qwen3:32b", "hi", temperature=0.2, max_tokens=5, seed=7)
    typed.stream_options.include_usage = True
    typed.stop.string_value = "x"
    from_typed = parse_request(params_to_dict(typed), stream=True)
    from_json = parse_request(
        {
            **BASE,
            "temperature": 0.2,
            "max_tokens": 5,
            "seed": 7,
            "stop": "x",
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert from_typed.body == from_json.body
    assert from_typed.include_usage and from_typed.stream


def test_typed_params_with_no_optional_fields_send_nothing_extra() -> None:
    body = parse_request(params_to_dict(params("m", "x"))).body  # fmt: skip
    assert body == {"model": "m", "messages": [{"role": "user", "content": "x"}]}


MODEL = ModelSpec(id="small", name="Small", context_window=100, max_tokens=50)


def test_max_tokens_over_the_model_limit_is_refused() -> None:
    request = parse_request({**BASE, "max_tokens": 51})
    with pytest.raises(ApiError) as caught:
        apply_model_limits(request, MODEL)
    assert caught.value.param == "max_tokens" and "<= 50" in caught.value.message


def test_prompt_over_the_context_window_is_refused_with_advice() -> None:
    request = parse_request({**BASE, "messages": user("word " * 200), "max_tokens": 10})
    with pytest.raises(ApiError) as caught:
        apply_model_limits(request, MODEL)
    error = caught.value
    assert error.status == 400 and error.code == "context_length_exceeded"
    assert "Lower max_tokens" in error.message and "larger context window" in error.message


def test_missing_max_tokens_gets_the_room_left() -> None:
    request = parse_request({**BASE, "messages": user("word " * 60)})
    estimate = apply_model_limits(request, MODEL)
    assert request.body["max_tokens"] == min(50, 100 - estimate)
