"""The /v1 (OpenAI-compatible) shapes ollama writes: completions, chunks, errors, models.

Two stream formats: the current one (v0.32.6+, middleware/openai.go ChatWriter with
ToStreamChunks/FinishChunk) and the legacy one (v0.5.2-v0.32.5, `toChunk`).
"""

from __future__ import annotations

import time
from typing import Any

from .generation import Generation, Step, ToolCall
from .models import ModelSpec, namespace_of
from .wire import go_json

FINGERPRINT = "fp_ollama"


def error_body(
    status: int, message: str, *, api_error_only: bool, middleware: bool
) -> dict[str, Any]:
    """openai.NewError; before v0.18 handler errors were always api_error."""
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    if api_error_only and not middleware:
        kind = "api_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def tool_calls_json(calls: list[ToolCall]) -> list[dict[str, Any]]:
    # arguments is a JSON *string*; Go marshals the map with sorted keys.
    return [
        {
            "id": c.id,
            "index": c.index,
            "type": "function",
            "function": {"name": c.name, "arguments": go_json(c.arguments, sort_keys=True)},
        }
        for c in calls
    ]


def usage_json(gen: Generation) -> dict[str, int]:
    return {
        "prompt_tokens": gen.prompt_tokens,
        "completion_tokens": gen.eval_count,
        "total_tokens": gen.prompt_tokens + gen.eval_count,
    }


def completion(
    completion_id: str, model: str, created: int, gen: Generation, *, legacy: bool
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": gen.content}
    if gen.thinking:
        message["reasoning"] = gen.thinking
    calls = gen.tool_calls
    if calls:
        message["tool_calls"] = tool_calls_json(calls)
    reason = gen.done_reason
    if calls and (reason == "stop" or legacy):  # from v0.32.6 "length" stays "length"
        reason = "tool_calls"
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [{"index": 0, "message": message, "finish_reason": reason}],
        "usage": usage_json(gen),
    }


class ChunkEncoder:
    """Turns native generation steps into /v1 chunk objects for one stream."""

    def __init__(
        self, completion_id: str, model: str, *, include_usage: bool, legacy: bool
    ) -> None:
        self.id = completion_id
        self.model = model
        self.include_usage = include_usage
        self.legacy = legacy
        self.created: int | None = None  # pinned from the first native response
        self.first_sent = False
        self.tool_call_sent = False
        self.last_chunk: dict[str, Any] | None = None

    def _chunk(
        self, delta: dict[str, Any], finish: str | None, *, model: str | None = None
    ) -> dict[str, Any]:
        created = int(time.time()) if self.legacy or self.created is None else self.created
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": self.model if model is None else model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        self.last_chunk = chunk
        return chunk

    def _role(self) -> dict[str, Any]:
        include = not self.first_sent
        self.first_sent = True
        return {"role": "assistant"} if include else {}

    def step(self, step: Step, created_s: int) -> list[dict[str, Any]]:
        if self.created is None:
            self.created = created_s
        if step.tool_calls:
            self.tool_call_sent = True
        if self.legacy:
            delta: dict[str, Any] = {"role": "assistant", "content": step.content}
            if step.thinking:
                delta["reasoning"] = step.thinking
            if step.tool_calls:
                delta["tool_calls"] = tool_calls_json(step.tool_calls)
            return [self._chunk(delta, None)]
        if step.thinking and (step.content or step.tool_calls):
            # ToStreamChunks: a mixed native chunk is split, reasoning first (no content key).
            first = self._chunk({**self._role(), "reasoning": step.thinking}, None)
            second_delta: dict[str, Any] = {"content": step.content}
            if step.tool_calls:
                second_delta["tool_calls"] = tool_calls_json(step.tool_calls)
            return [first, self._chunk(second_delta, None)]
        delta = {**self._role(), "content": step.content}
        if step.thinking:
            delta["reasoning"] = step.thinking
        if step.tool_calls:
            delta["tool_calls"] = tool_calls_json(step.tool_calls)
        return [self._chunk(delta, None)]

    def finish(self, gen: Generation, created_s: int) -> list[dict[str, Any]]:
        """Finish chunk (+ usage chunk when asked); [DONE] is written by the caller."""
        if self.created is None:
            self.created = created_s
        chunks: list[dict[str, Any]] = []
        if self.legacy:
            reason = "tool_calls" if self.tool_call_sent else gen.done_reason
            chunks.append(self._chunk({"role": "assistant", "content": ""}, reason))
        else:
            if not self.first_sent:  # a wholly empty completion still opens with a role chunk
                chunks.append(self._chunk({**self._role(), "content": ""}, None))
            reason = gen.done_reason or "stop"
            if reason == "stop" and self.tool_call_sent:
                reason = "tool_calls"
            chunks.append(self._chunk({}, reason))
        if self.include_usage:
            assert self.last_chunk is not None
            chunks.append({**self.last_chunk, "choices": [], "usage": usage_json(gen)})
        return chunks

    def broken(self) -> dict[str, Any]:
        """What a mid-stream native {"error":...} line becomes: an empty chunk, model ""."""
        if self.legacy:
            return self._chunk({"role": "assistant", "content": ""}, None, model="")
        return self._chunk({**self._role(), "content": ""}, None, model="")


def model_object(model_id: str, spec: ModelSpec) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": int(spec.modified_at),
        "owned_by": namespace_of(model_id),
    }


def model_list(models: list[ModelSpec]) -> dict[str, Any]:
    ordered = sorted(models, key=lambda m: m.modified_at, reverse=True)
    # A nil Go slice: no models is "data": null, not [].
    data = [model_object(m.name, m) for m in ordered] or None
    return {"object": "list", "data": data}
