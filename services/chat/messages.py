"""Validation and normalisation of `messages` (roles, content parts, tool calls)."""

from __future__ import annotations

import json
from typing import Any

from clawgate.common.errors import invalid
from services.chat.checks import not_one_of, wrong_type

ROLES = ("system", "developer", "user", "assistant", "tool")
CONTENT_PART_TYPES = ("text", "image_url", "input_audio")


def parse_messages(value: Any) -> list[dict[str, Any]]:
    if value is None:
        raise invalid(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(value, list):
        raise wrong_type("messages", "an array", value)
    if not value:
        raise invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            "messages",
            "empty_array",
        )
    return [_message(i, m) for i, m in enumerate(value)]


def _message(index: int, value: Any) -> dict[str, Any]:
    where = f"messages[{index}]"
    if not isinstance(value, dict):
        raise wrong_type(where, "an object", value)
    role = value.get("role")
    if role is None:
        raise invalid(
            f"Missing required parameter: '{where}.role'.",
            f"{where}.role",
            "missing_required_parameter",
        )
    if role not in ROLES:
        raise not_one_of(f"{where}.role", role, ROLES)
    message: dict[str, Any] = {"role": "system" if role == "developer" else role}

    tool_calls = _message_tool_calls(where, value.get("tool_calls")) if role == "assistant" else []
    content = value.get("content")
    if content is None:
        if not tool_calls:
            raise invalid(
                f"Missing required parameter: '{where}.content'.",
                f"{where}.content",
                "missing_required_parameter",
            )
    elif isinstance(content, str):
        pass
    elif isinstance(content, list):
        content = [_content_part(f"{where}.content[{j}]", p) for j, p in enumerate(content)]
    else:
        raise wrong_type(f"{where}.content", "a string or an array of content parts", content)
    message["content"] = content
    if tool_calls:
        message["tool_calls"] = tool_calls

    for key in ("name", "tool_call_id"):
        if value.get(key) not in (None, ""):
            if not isinstance(value[key], str):
                raise wrong_type(f"{where}.{key}", "a string", value[key])
            message[key] = value[key]
    # Earlier assistant turns may carry their thinking; older servers call it
    # reasoning_content.
    reasoning = value.get("reasoning") or value.get("reasoning_content")
    if role == "assistant" and isinstance(reasoning, str) and reasoning:
        message["reasoning"] = reasoning
    return message


def _content_part(where: str, part: Any) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise wrong_type(where, "an object", part)
    kind = part.get("type")
    if kind not in CONTENT_PART_TYPES:
        raise not_one_of(f"{where}.type", kind, CONTENT_PART_TYPES)
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise wrong_type(f"{where}.text", "a string", part.get("text"))
        return {"type": "text", "text": part["text"]}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url:
            raise wrong_type(f"{where}.image_url.url", "a URL string", url)
        return {"type": "image_url", "image_url": {"url": url}}
    audio = part.get("input_audio")
    if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
        raise wrong_type(f"{where}.input_audio", "an object with base64 `data`", audio)
    return {"type": "input_audio", "input_audio": dict(audio)}


def _message_tool_calls(where: str, value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise wrong_type(f"{where}.tool_calls", "an array", value)
    calls = []
    for i, call in enumerate(value):
        at = f"{where}.tool_calls[{i}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise wrong_type(f"{at}.function", "an object with a `name`", function)
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):  # some clients send the object itself
            arguments = json.dumps(arguments, ensure_ascii=False)
        calls.append(
            {
                "id": str(call.get("id") or f"call_{i}"),
                "type": "function",
                "function": {"name": function["name"], "arguments": arguments},
            }
        )
    return calls
