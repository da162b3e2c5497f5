"""The native API shapes (api/types.go): /api/chat lines, /api/tags, /api/ps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .generation import Generation, Step, ToolCall
from .models import ModelSpec
from .wire import rfc3339_seconds, rfc3339nano


@dataclass
class Metrics:
    """Durations in nanoseconds, as on the done:true object. Zero values are omitted."""

    total_duration: int
    load_duration: int
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int

    def to_json(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if v}


def _sorted(value: Any) -> Any:
    # Arguments come from a Go map, which json.Marshal writes with sorted keys.
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def tool_calls_json(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [
        {
            "id": c.id,
            "function": {"index": c.index, "name": c.name, "arguments": _sorted(c.arguments)},
        }
        for c in calls
    ]


def _message(content: str, thinking: str, calls: list[ToolCall]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    if calls:
        message["tool_calls"] = tool_calls_json(calls)
    return message


def chunk(model: str, created_ns: int, step: Step) -> dict[str, Any]:
    return {
        "model": model,
        "created_at": rfc3339nano(created_ns),
        "message": _message(step.content, step.thinking, step.tool_calls),
        "done": False,
    }


def done(model: str, created_ns: int, reason: str, metrics: Metrics) -> dict[str, Any]:
    """The final streamed line: empty message, done_reason and the metrics."""
    return {**load_reply(model, created_ns, reason), **metrics.to_json()}


def full(model: str, created_ns: int, gen: Generation, metrics: Metrics) -> dict[str, Any]:
    """stream:false: content and thinking concatenated in one object."""
    return {
        "model": model,
        "created_at": rfc3339nano(created_ns),
        "message": _message(gen.content, gen.thinking, gen.tool_calls),
        "done": True,
        "done_reason": gen.done_reason,
        **metrics.to_json(),
    }


def load_reply(model: str, created_ns: int, reason: str) -> dict[str, Any]:
    """Empty messages: preload ("load") or unload with keep_alive 0 ("unload")."""
    return {
        "model": model,
        "created_at": rfc3339nano(created_ns),
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": reason,
    }


def tags(models: list[ModelSpec], thinking_prefixes: list[str]) -> dict[str, Any]:
    ordered = sorted(models, key=lambda m: m.modified_at, reverse=True)
    return {
        "models": [
            {
                "name": m.name,
                "model": m.name,
                "modified_at": rfc3339_seconds(m.modified_at),
                "size": m.size,
                "digest": m.digest,
                "details": m.details(),
                "capabilities": m.effective_capabilities(thinking_prefixes),
            }
            for m in ordered
        ]
    }


def ps_entry(spec: ModelSpec, expires_at: float, context_length: int) -> dict[str, Any]:
    return {
        "name": spec.name,
        "model": spec.name,
        "size": spec.size,
        "digest": spec.digest,
        "details": spec.details(),
        "expires_at": rfc3339_seconds(expires_at),
        "size_vram": spec.size_vram,
        "context_length": context_length,
    }
