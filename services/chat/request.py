"""Parse and validate an OpenAI chat request into one normalised form.

Both entry points use this module: the raw REST body (`parse_json_body`) and the typed
gRPC params (`params_to_dict`). The result is a `ChatRequest` whose `body` is the
normalised OpenAI request (what decides the answer, ready to forward upstream and to use
as the cache key) plus the transport options (stream, include_usage) kept apart.

Error messages follow OpenAI's wording so clients see familiar text, and always name the
parameter. Unknown top-level fields are rejected (as OpenAI does) so typos surface.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from clawgate.chat.v1 import chat_service_pb2 as pb
from clawgate.common.errors import ApiError, invalid, quote
from services.chat.checks import boolean, integer, not_one_of, number, type_name, wrong_type
from services.chat.messages import parse_messages

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "max", "xhigh", "ultra")
RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")

# Forwarded to the provider when present.
_FORWARDED_NUMBERS = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "frequency_penalty": (-2.0, 2.0),
    "presence_penalty": (-2.0, 2.0),
}
# OpenAI fields accepted but not forwarded (ollama ignores them, or they concern billing
# and storage on OpenAI's side).
_ACCEPTED_IGNORED = frozenset(
    {
        "user",
        "logit_bias",
        "metadata",
        "store",
        "service_tier",
        "modalities",
        "audio",
        "prediction",
        "web_search_options",
        "verbosity",
        "prompt_cache_key",
        "safety_identifier",
    }
)
_LEGACY_FUNCTIONS = frozenset({"functions", "function_call"})
_HANDLED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "stop",
        "seed",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning_effort",
        "reasoning",
        "logprobs",
        "top_logprobs",
        "keep_alive",  # ollama extension, used by the native adapter
        *_FORWARDED_NUMBERS,
    }
)


@dataclass
class ChatRequest:
    """A validated chat request."""

    # Normalised OpenAI request: `model`, `messages` and the sampling fields that were
    # given. No transport fields (stream, stream_options) and nothing ignored.
    body: dict[str, Any]
    # The model string as the client sent it (echoed in answers).
    requested_model: str
    stream: bool = False
    include_usage: bool = False
    # ollama `keep_alive` (native API only); not part of the answer's identity.
    keep_alive: str | float | None = None
    # Set when an agent was applied.
    agent_id: str | None = None
    # The agent's gateway tools (plugins & tools hook).
    agent_tools: tuple[str, ...] = ()

    @property
    def model(self) -> str:
        model: str = self.body["model"]
        return model


# Deeper JSON is refused (as the transcoder refuses it for typed bodies): nothing an OpenAI
# client sends comes close, and deep values would exhaust recursion further on.
MAX_JSON_DEPTH = 100
_SURROGATE = re.compile("[\ud800-\udfff]")


def _bad_json(reason: str) -> ApiError:
    return ApiError(
        400,
        f"We could not parse the JSON body of your request ({reason}). "
        "The API expects a JSON object.",
        code="invalid_json",
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:20]} is too large")
    return value


def _check_json_value(value: Any) -> None:
    """Depth limit, and no lone surrogates (\\ud800): they cannot be encoded as UTF-8 to
    forward the request or store its answer."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise _bad_json("a string contains a lone UTF-16 surrogate such as \\ud800")
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise _bad_json(f"values are nested more than {MAX_JSON_DEPTH} levels deep")
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)


def parse_json_body(data: bytes) -> dict[str, Any]:
    """The REST body as a JSON object, or a 400 in OpenAI's words."""
    if not data.strip():
        raise ApiError(
            400,
            "We could not parse the JSON body of your request: the body is empty. "
            "The API expects a JSON object.",
            code="invalid_json",
        )
    try:
        # A BOM from Windows tools is fine; NaN, Infinity and 1e999 cannot be forwarded.
        value = json.loads(
            data.decode("utf-8-sig"),
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except UnicodeDecodeError:
        raise ApiError(
            400, "The request body is not valid UTF-8 text.", code="invalid_json"
        ) from None
    except RecursionError:
        raise _bad_json(f"values are nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:
        raise _bad_json(str(exc)) from None
    _check_json_value(value)
    if not isinstance(value, dict):
        raise ApiError(
            400,
            f"The request body must be a JSON object, not {type_name(value)}.",
            code="invalid_json",
        )
    return value


def params_to_dict(params: pb.ChatCompletionParams) -> dict[str, Any]:
    """Typed gRPC params as the equivalent OpenAI JSON request."""
    data: dict[str, Any] = json_format.MessageToDict(params, preserving_proto_field_name=True)
    if "seed" in data:  # int64 is rendered as a string in JSON
        data["seed"] = int(data["seed"])
    return data


def parse_request(raw: Mapping[str, Any], *, stream: bool | None = None) -> ChatRequest:
    """Validate `raw`; `stream` forces the mode (typed gRPC methods decide it themselves)."""
    for key in raw:
        if key in _LEGACY_FUNCTIONS:
            raise invalid(
                f"'{key}' (legacy function calling) is not supported; use 'tools' and "
                "'tool_choice' instead.",
                key,
                "unsupported_parameter",
            )
        if key not in _HANDLED and key not in _ACCEPTED_IGNORED:
            raise invalid(
                f"Unrecognized request argument supplied: {quote(key)}", key, "unknown_parameter"
            )
    model = raw.get("model")
    if model is None or model == "":
        raise invalid("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    if not isinstance(model, str):
        raise wrong_type("model", "a string", model)

    body: dict[str, Any] = {"model": model, "messages": parse_messages(raw.get("messages"))}
    for name, (low, high) in _FORWARDED_NUMBERS.items():
        if raw.get(name) is not None:
            body[name] = number(name, raw[name], low, high)
    max_tokens = _max_tokens(raw)
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    _check_n(raw.get("n"))
    stop = _stop(raw.get("stop"))
    if stop:
        body["stop"] = stop
    if raw.get("seed") is not None:
        body["seed"] = integer("seed", raw["seed"])
    response_format = _response_format(raw.get("response_format"))
    if response_format is not None:
        body["response_format"] = response_format
    tools = _tools(raw.get("tools"))
    if tools:
        body["tools"] = tools
        if raw.get("tool_choice") is not None:
            body["tool_choice"] = _tool_choice(raw["tool_choice"])
        if raw.get("parallel_tool_calls") is not None:
            body["parallel_tool_calls"] = boolean("parallel_tool_calls", raw["parallel_tool_calls"])
    effort = _reasoning_effort(raw)
    if effort is not None:
        body["reasoning_effort"] = effort
    if raw.get("logprobs") is not None and boolean("logprobs", raw["logprobs"]):
        body["logprobs"] = True
        if raw.get("top_logprobs") is not None:
            body["top_logprobs"] = integer("top_logprobs", raw["top_logprobs"], 0, 20)

    wants_stream = boolean("stream", raw["stream"]) if raw.get("stream") is not None else False
    return ChatRequest(
        body=body,
        requested_model=model,
        stream=wants_stream if stream is None else stream,
        include_usage=_include_usage(raw.get("stream_options")),
        keep_alive=_keep_alive(raw.get("keep_alive")),
    )


# --- sampling and options --------------------------------------------------------------


def _max_tokens(raw: Mapping[str, Any]) -> int | None:
    # max_completion_tokens is the newer name; it wins when both are given.
    for name in ("max_completion_tokens", "max_tokens"):
        if raw.get(name) is not None:
            value = integer(name, raw[name])
            if value < 1:
                raise invalid(
                    f"Invalid '{name}': integer below minimum value. "
                    f"Expected a value >= 1, but got {value} instead.",
                    name,
                    "integer_below_min_value",
                )
            return value
    return None


def _check_n(value: Any) -> None:
    if value is None:
        return
    n = integer("n", value)
    if n != 1:
        raise invalid(
            f"Invalid 'n': only one choice per request is supported (got {n}).",
            "n",
            "unsupported_value",
        )


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return [s for s in value if s]
    raise wrong_type("stop", "a string or an array of strings", value)


def _response_format(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise wrong_type("response_format", "an object", value)
    kind = value.get("type")
    if kind not in RESPONSE_FORMAT_TYPES:
        raise not_one_of("response_format.type", kind, RESPONSE_FORMAT_TYPES)
    if kind == "text":
        return None
    if kind == "json_schema":
        schema = value.get("json_schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("schema", {}), dict):
            raise wrong_type("response_format.json_schema", "an object with a `schema`", schema)
    return dict(value)


def _tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise wrong_type("tools", "an array", value)
    for i, tool in enumerate(value):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type", "function") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
        ):
            raise invalid(
                f"Invalid 'tools[{i}]': expected "
                '{"type": "function", "function": {"name": ..., "parameters": {...}}}.',
                f"tools[{i}]",
            )
    return [dict(t, type="function") for t in value]


def _tool_choice(value: Any) -> Any:
    if value in ("none", "auto", "required"):
        return value
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        return value
    raise invalid(
        "Invalid 'tool_choice': expected 'none', 'auto', 'required' or "
        '{"type": "function", "function": {"name": ...}}.',
        "tool_choice",
    )


def _reasoning_effort(raw: Mapping[str, Any]) -> str | None:
    # As in ollama: `reasoning.effort` wins over `reasoning_effort`.
    param, value = "reasoning_effort", raw.get("reasoning_effort")
    reasoning = raw.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise wrong_type("reasoning", "an object", reasoning)
        if reasoning.get("effort") is not None:
            param, value = "reasoning.effort", reasoning["effort"]
    if value is None:
        return None
    if value not in REASONING_EFFORTS:
        raise not_one_of(param, value, REASONING_EFFORTS)
    effort: str = value
    return effort


def _include_usage(value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, dict):
        raise wrong_type("stream_options", "an object", value)
    flag = value.get("include_usage")
    return boolean("stream_options.include_usage", flag) if flag is not None else False


def _keep_alive(value: Any) -> str | float | None:
    if value is None:
        return None
    if isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise wrong_type("keep_alive", "a duration string or a number of seconds", value)
