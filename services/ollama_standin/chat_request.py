"""Turning /v1/chat/completions and /api/chat bodies into one ChatJob, with ollama's errors.

Validation follows the order of the real server: the Go JSON decoder, then (for /v1) the
OpenAI middleware, then the chat handler. Messages are the Go error strings from §1.4.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from .chat_job import ApiError, ChatJob
from .go_decode import GoFields, decode_body, go_type_name, parse_go_duration, top_object
from .runners import FOREVER_S

THINK_LEVELS = ("low", "medium", "high", "max")
# reasoning_effort -> native think value (openai/openai.go, v0.33)
EFFORT_TO_THINK: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "max": "max",
    "xhigh": "max",
    "ultra": "max",
}
# Accepted data-URL prefixes; a blank mime type matches /api/chat's bare base64.
_IMAGE_PREFIXES = (
    *(f"data:image/{t};base64," for t in ("jpeg", "jpg", "png", "webp")),
    "data:;base64,",
)
# Model defaults when a native request leaves sampling options out (api.DefaultOptions).
NATIVE_DEFAULT_TEMPERATURE = 0.8
NATIVE_DEFAULT_TOP_P = 0.9


def _openai_tool_calls(calls: list[GoFields]) -> list[dict[str, Any]]:
    out = []
    for call in calls:
        fn = call.obj("function", "struct { Name string; Arguments string }")
        fn_fields = GoFields(fn or {}, f"{call.path}.function", middleware=True)
        name = fn_fields.string("name") or ""
        arguments = fn_fields.string("arguments") or ""
        try:
            parsed = json.loads(arguments)
        except ValueError:
            raise ApiError(400, "invalid tool call arguments", middleware=True) from None
        out.append({"function": {"name": name, "arguments": parsed}})
    return out


def _image_bytes(url: str) -> bytes:
    if url.startswith(("http://", "https://")):
        raise ApiError(
            400,
            "image URLs are not currently supported, please use base64 encoded data instead",
            middleware=True,
        )
    prefix = next((p for p in _IMAGE_PREFIXES if url.startswith(p)), None)
    if prefix is None:
        raise ApiError(400, "invalid image input", middleware=True)
    try:
        return base64.b64decode(url[len(prefix) :], validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid message format", middleware=True) from None


def _openai_messages(messages: list[GoFields]) -> list[dict[str, Any]]:
    """FromChatRequest: each content part becomes its own native message."""
    out: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool_call_id -> function name, for tool results
    for msg in messages:
        for call in msg.objects("tool_calls", "[]openai.ToolCall", "openai.ToolCall"):
            fn = call.get("function")
            call_id = call.get("id")
            if isinstance(call_id, str) and isinstance(fn, dict):
                call_names[call_id] = str(fn.get("name") or "")
    for msg in messages:
        role = msg.string("role") or ""
        reasoning = msg.string("reasoning") or ""
        tool_call_id = msg.string("tool_call_id") or ""
        tool_name = ""
        if role.lower() == "tool":
            tool_name = msg.string("name") or call_names.get(tool_call_id, "")
        calls_raw = msg.objects("tool_calls", "[]openai.ToolCall", "openai.ToolCall")
        content = msg.get("content")
        if isinstance(content, str):
            out.append(
                _native_message(
                    role, content, reasoning, _openai_tool_calls(calls_raw), tool_name, tool_call_id
                )
            )
        elif isinstance(content, list):
            parts = [_openai_part(role, part) for part in content]
            if parts and calls_raw:  # tool calls ride on the last part's message
                last = parts[-1]
                last.update(
                    _native_message(
                        role,
                        last["content"],
                        reasoning,
                        _openai_tool_calls(calls_raw),
                        tool_name,
                        tool_call_id,
                    )
                )
            out += parts
        else:
            if msg.get("tool_calls") is None:
                raise ApiError(
                    400, f"invalid message content type: {go_type_name(content)}", middleware=True
                )
            out.append(
                _native_message(
                    role, "", reasoning, _openai_tool_calls(calls_raw), "", tool_call_id
                )
            )
    return out


def _openai_part(role: str, part: object) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise ApiError(400, "invalid message format", middleware=True)
    kind = part.get("type")
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise ApiError(400, "invalid message format", middleware=True)
        return {"role": role, "content": part["text"]}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise ApiError(400, "invalid message format", middleware=True)
        return {
            "role": role,
            "content": "",
            "images": [base64.b64encode(_image_bytes(url)).decode()],
        }
    if kind == "input_audio":
        audio = part.get("input_audio")
        data = audio.get("data") if isinstance(audio, dict) else None
        if not isinstance(audio, dict):
            raise ApiError(400, "invalid input_audio format", middleware=True)
        if not isinstance(data, str):
            raise ApiError(400, "invalid input_audio format: missing data", middleware=True)
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ApiError(
                400, f"invalid input_audio base64 data: {exc}", middleware=True
            ) from None
        return {"role": role, "content": "", "images": [data]}
    raise ApiError(400, "invalid message format", middleware=True)


def _native_message(
    role: str,
    content: str,
    thinking: str,
    tool_calls: list[dict[str, Any]],
    tool_name: str,
    tool_call_id: str,
) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": role, "content": content}
    if thinking:
        msg["thinking"] = thinking
    if tool_calls:
        msg["tool_calls"] = tool_calls
    if tool_name:
        msg["tool_name"] = tool_name
    if tool_call_id:
        msg["tool_call_id"] = tool_call_id
    return msg


def _stops(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(s for s in value if isinstance(s, str))  # non-strings are dropped
    return ()


def parse_openai(raw: bytes) -> ChatJob:
    body = top_object(
        decode_body(raw, empty_message="EOF", middleware=True),
        "openai.ChatCompletionRequest",
        middleware=True,
    )
    f = GoFields(body, "ChatCompletionRequest", middleware=True)
    model = f.string("model") or ""
    messages = f.objects("messages", "[]openai.Message", "openai.Message")
    stream = bool(f.boolean("stream"))
    stream_options = f.obj("stream_options", "openai.StreamOptions")
    include_usage = bool(
        GoFields(
            stream_options or {}, "ChatCompletionRequest.stream_options", middleware=True
        ).boolean("include_usage")
    )
    max_tokens = f.integer("max_tokens")
    seed = f.integer("seed")
    temperature = f.number("temperature")
    top_p = f.number("top_p")
    f.number("frequency_penalty")
    f.number("presence_penalty")
    response_format = f.obj("response_format", "openai.ResponseFormat")
    tools = f.array("tools", "[]api.Tool") or []
    reasoning = f.obj("reasoning", "openai.Reasoning")
    effort_field = f.string("reasoning_effort")
    f.boolean("logprobs")
    top_logprobs = f.integer("top_logprobs") or 0

    if not messages:
        raise ApiError(400, "[] is too short - 'messages'", middleware=True)
    native_messages = _openai_messages(messages)

    fmt: Any = None
    if response_format:
        kind = str(response_format.get("type") or "").strip().lower()
        schema = response_format.get("json_schema")
        if kind == "json_object":
            fmt = "json"
        elif kind == "json_schema" and isinstance(schema, dict):
            fmt = schema.get("schema")

    # `reasoning` wins over `reasoning_effort` when both are given.
    effort = str(reasoning.get("effort") or "") if reasoning is not None else (effort_field or "")
    think: bool | str | None = None
    if effort:
        if effort not in EFFORT_TO_THINK:
            allowed = ", ".join(f'"{e}"' for e in list(EFFORT_TO_THINK)[:-1])
            raise ApiError(
                400,
                f"invalid reasoning value: '{effort}' (must be {allowed}, or \"ultra\")",
                middleware=True,
            )
        think = EFFORT_TO_THINK[effort]

    return ChatJob(
        api="openai",
        model=model,
        messages=native_messages,
        stream=stream,
        include_usage=stream and include_usage,
        temperature=1.0 if temperature is None else temperature,  # /v1 default, not the model's
        top_p=1.0 if top_p is None else top_p,
        seed=seed,
        stop=_stops(body.get("stop")),
        num_predict=max_tokens,  # max_completion_tokens is NOT mapped by ollama
        think=think,
        tools=tuple(t for t in tools if isinstance(t, dict)),
        format=fmt,
        top_logprobs=top_logprobs,
    )


def _keep_alive(value: object) -> float | None:
    """api.Duration: seconds as a number, or a Go duration string; negative = forever."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ApiError(400, f"Unsupported type: '{type(value).__name__}'")
    seconds = float(value) if not isinstance(value, str) else parse_go_duration(value)
    return FOREVER_S if seconds < 0 else seconds


def _native_options(options: dict[str, Any], job: ChatJob) -> None:
    """api.Options.FromMap: type errors are reported when the runner is scheduled (500)."""
    kinds = {
        "temperature": "float32",
        "top_p": "float32",
        "seed": "int",
        "num_predict": "int",
        "num_ctx": "int",
        "stop": "[]string",
    }
    for key, kind in kinds.items():
        value = options.get(key)
        if value is None:
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if kind == "float32" and not number:
            job.deferred_error = ApiError(500, f'option "{key}" must be of type float32')
        elif kind == "int" and not number:
            job.deferred_error = ApiError(500, f'option "{key}" must be of type integer')
        elif kind == "[]string" and not (
            isinstance(value, list) and all(isinstance(s, str) for s in value)
        ):
            job.deferred_error = ApiError(500, f'option "{key}" must be of type array of strings')
        elif kind == "float32":
            setattr(job, key, float(value))
        elif kind == "int":
            setattr(job, key, int(value) if math.isfinite(value) else None)
        else:
            job.stop = tuple(value)


def parse_native(raw: bytes) -> ChatJob:
    body = top_object(
        decode_body(raw, empty_message="missing request body", middleware=False),
        "api.ChatRequest",
        middleware=False,
    )
    f = GoFields(body, "ChatRequest", middleware=False)
    model = f.string("model") or ""
    messages: list[dict[str, Any]] = []
    for msg in f.objects("messages", "[]api.Message", "api.Message"):
        native: dict[str, Any] = {
            "role": msg.string("role") or "",
            "content": msg.string("content") or "",
        }
        for key in ("thinking", "tool_name", "tool_call_id"):
            if text := msg.string(key):
                native[key] = text
        if images := msg.array("images", "[]api.ImageData"):
            native["images"] = images
        if calls := msg.array("tool_calls", "[]api.ToolCall"):
            native["tool_calls"] = calls
        messages.append(native)
    stream = f.boolean("stream")
    options = f.obj("options", "map[string]interface {}") or {}
    tools = f.array("tools", "api.Tools") or []
    think_raw = f.get("think")
    think: bool | str | None = None
    if think_raw is not None:
        if isinstance(think_raw, bool) or think_raw in THINK_LEVELS:
            think = think_raw if isinstance(think_raw, bool) else str(think_raw)
        else:
            shown = json.dumps(think_raw, ensure_ascii=False)
            allowed = '"high", "medium", "low", "max", true, or false'
            raise ApiError(400, f"invalid think value: {shown} (must be {allowed})")
    f.boolean("truncate")
    f.boolean("shift")
    f.boolean("logprobs")
    top_logprobs = f.integer("top_logprobs") or 0
    job = ChatJob(
        api="native",
        model=model,
        messages=messages,
        stream=True if stream is None else stream,  # native streams by default
        temperature=NATIVE_DEFAULT_TEMPERATURE,
        top_p=NATIVE_DEFAULT_TOP_P,
        keep_alive_s=_keep_alive(body.get("keep_alive")),
        think=think,
        tools=tuple(t for t in tools if isinstance(t, dict)),
        format=body.get("format"),
        top_logprobs=top_logprobs,
    )
    _native_options(options, job)
    return job
