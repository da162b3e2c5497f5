"""Shared builders of the prompt-cache tests."""

from __future__ import annotations

import dataclasses
from typing import Any

from clawgate.common.config import CacheSettings


def completion(text: str = "Hello!", finish: str | None = "stop", **extra: Any) -> dict[str, Any]:
    """An OpenAI chat.completion as ollama returns it."""
    return {
        "id": "chatcmpl-417",
        "object": "chat.completion",
        "created": 1755000000,
        "model": "qwen3:32b",
        "system_fingerprint": "fp_ollama",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 48, "total_tokens": 60},
        **extra,
    }


def chat_request(text: str = "Hello", model: str = "qwen3:32b", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def settings_for(namespace: str, **overrides: Any) -> CacheSettings:
    # Generous op timeout: these tests check behaviour, not Redis speed on a busy machine.
    base = CacheSettings(
        enabled=True,
        ttl_seconds=600,
        namespace=namespace,
        op_timeout_ms=500,
        single_flight_wait_s=10.0,
    )
    return dataclasses.replace(base, **overrides)
