"""A chat request as the runner sees it, whichever API it came through, and API errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


class ApiError(Exception):
    """An error response. `middleware` marks /v1 errors raised before the chat handler,
    which keep invalid_request_error even on pre-v0.18 servers."""

    def __init__(self, status: int, message: str, *, middleware: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.middleware = middleware


@dataclass
class ChatJob:
    """One chat request in native terms (what the OpenAI middleware hands the handler)."""

    api: Literal["openai", "native"]
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    num_predict: int | None = None
    num_ctx: int | None = None
    keep_alive_s: float | None = None  # None: the server default (OLLAMA_KEEP_ALIVE)
    think: bool | str | None = None  # None: not asked, the model's default applies
    tools: tuple[dict[str, Any], ...] = ()
    format: Any = None
    top_logprobs: int = 0
    # Option type errors surface only when the runner is scheduled (after model lookup).
    deferred_error: ApiError | None = field(default=None)
