"""OpenAI wire objects: chat.completion, chat.completion.chunk, SSE frames, and the
conversions between a stream of deltas and a complete answer (both ways, for the cache).
Fields the upstream sent beyond OpenAI's core (system_fingerprint, usage details, server
extras such as llama.cpp's `timings`) are passed through, also on cache replays.
"""

from __future__ import annotations

import json
import secrets
import string
import time
from typing import Any

import orjson

from clawgate.common.errors import ApiError
from services.chat.providers.base import Delta, Usage, extra_fields

_ID_ALPHABET = string.ascii_letters + string.digits
DONE_FRAME = b"data: [DONE]\n\n"
# For what orjson cannot encode; json.dumps() with options would build one per call.
_FALLBACK = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def completion_id() -> str:
    """`chatcmpl-` + 29 random characters, like OpenAI's ids (unique per response)."""
    # One draw from the OS for all 29 characters (not one per character).
    return "chatcmpl-" + "".join(_ID_ALPHABET[b % 62] for b in secrets.token_bytes(29))


def dumps(value: Any) -> bytes:
    """Compact JSON in UTF-8, non-ASCII kept raw (Chinese text stays readable), through
    orjson; what orjson cannot encode (an integer beyond 64 bits from some upstream) goes
    through the json module."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return _FALLBACK.encode(value).encode()


def sse_frame(value: Any) -> bytes:
    return b"data: " + dumps(value) + b"\n\n"


def error_frame(error: ApiError) -> bytes:
    """How a failure after the stream began reaches the client (no [DONE] follows)."""
    return sse_frame(error.body())


def final_finish_reason(reason: str, saw_tool_calls: bool) -> str:
    return "tool_calls" if saw_tool_calls and reason == "stop" else reason


class ChunkEncoder:
    """Deltas → chat.completion.chunk objects, in OpenAI's order: a role chunk, content
    chunks, a finish chunk with an empty delta, then (if asked) a usage chunk."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.extra: dict[str, Any] = {}  # upstream fields so far, on every later chunk
        self._started = False
        self._tool_calls = False

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            **self.extra,
            "choices": choices,
        }

    def _choice(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "finish_reason": finish_reason}

    def _role(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        return [self._chunk([self._choice({"role": "assistant", "content": ""})])]

    def encode(self, delta: Delta) -> list[dict[str, Any]]:
        self.extra.update(extra_fields(delta.extra))
        if delta.usage is not None:
            self.usage = delta.usage
        chunks: list[dict[str, Any]] = []
        if delta.has_output:
            chunks += self._role()
            body: dict[str, Any] = {}
            if delta.reasoning:
                body["reasoning"] = delta.reasoning
            if delta.content or not (delta.reasoning or delta.tool_calls):
                body["content"] = delta.content
            if delta.tool_calls:
                body["tool_calls"] = delta.tool_calls
                self._tool_calls = True
            choice = self._choice(body)
            if delta.logprobs:
                choice["logprobs"] = {"content": delta.logprobs}
            chunks.append(self._chunk([choice]))
        if delta.finish_reason is not None:
            chunks += self._role()
            reason = final_finish_reason(delta.finish_reason, self._tool_calls)
            chunks.append(self._chunk([self._choice({}, reason)]))
        return chunks

    def end(self) -> list[dict[str, Any]]:
        """After the last delta: the usage chunk, when the client asked for it."""
        if not self.include_usage or self.usage is None:
            return []
        return [{**self._chunk([]), "usage": self.usage.to_json()}]


class Aggregator:
    """Deltas → one chat.completion (tool call fragments merged by index)."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.logprobs: list[dict[str, Any]] = []
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.extra: dict[str, Any] = {}

    def add(self, delta: Delta) -> None:
        self.extra.update(extra_fields(delta.extra))
        self.content.append(delta.content)
        self.reasoning.append(delta.reasoning)
        self.logprobs.extend(delta.logprobs)
        for part in delta.tool_calls:
            self._merge_tool_call(part)
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason
        if delta.usage is not None:
            self.usage = delta.usage

    def _merge_tool_call(self, part: dict[str, Any]) -> None:
        index = int(part.get("index", len(self.tool_calls)))
        call = self.tool_calls.setdefault(
            index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if part.get("id"):
            call["id"] = part["id"]
        function = part.get("function") or {}
        if function.get("name"):
            call["function"]["name"] = function["name"]
        call["function"]["arguments"] += function.get("arguments") or ""

    @property
    def complete(self) -> bool:
        return self.finish_reason is not None

    def completion(self, model: str, usage: Usage) -> dict[str, Any]:
        content = "".join(self.content)
        calls = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if calls and not content else content,
        }
        reasoning = "".join(self.reasoning)
        if reasoning:
            message["reasoning"] = reasoning
        if calls:
            message["tool_calls"] = calls
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "finish_reason": final_finish_reason(self.finish_reason or "stop", bool(calls)),
        }
        if self.logprobs:
            choice["logprobs"] = {"content": self.logprobs}
        return {
            "id": completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            **self.extra,
            "choices": [choice],
            "usage": usage.to_json(),
        }


def restamp(completion: dict[str, Any], model: str) -> dict[str, Any]:
    """A stored answer as a new response: new id and created, the model the client asked."""
    return {**completion, "id": completion_id(), "created": int(time.time()), "model": model}


def completion_to_deltas(completion: dict[str, Any]) -> list[Delta]:
    """A complete answer replayed as deltas (cache hits served as a stream)."""
    choice = completion["choices"][0]
    message = choice.get("message") or {}
    calls = [{"index": i, **call} for i, call in enumerate(message.get("tool_calls") or ())]
    logprobs = (choice.get("logprobs") or {}).get("content") or []
    return [
        Delta(
            content=message.get("content") or "",
            reasoning=message.get("reasoning") or "",
            tool_calls=calls,
            logprobs=logprobs,
            extra=extra_fields(completion),
        ),
        Delta(finish_reason=choice.get("finish_reason") or "stop"),
        Delta(usage=Usage.from_json(completion.get("usage") or {})),
    ]
