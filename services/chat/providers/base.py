"""What every upstream adapter produces: deltas, and failures that say what went wrong.

Adapters translate one provider wire format into `Delta` events and raise
`UpstreamFailure` subclasses; they never build client-facing errors themselves
(services/chat/errors.py does that, so every adapter fails the same way).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

from clawgate.common.config import ModelSpec, ProviderSpec
from clawgate.common.logging import request_id
from services.chat.request import ChatRequest

if TYPE_CHECKING:
    from services.chat.providers.probe import WorkerProbe


# Keys of an OpenAI answer or chunk that the gateway writes itself; any other key an
# upstream sends (system_fingerprint, llama.cpp's timings, …) is passed through.
OWN_KEYS = frozenset({"id", "object", "created", "model", "choices", "usage", "error"})
USAGE_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    # What else the server counted: prompt_tokens_details.cached_tokens,
    # completion_tokens_details.reasoning_tokens, …
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_json(cls, usage: dict[str, Any]) -> Usage:
        """An OpenAI usage object, details kept."""
        return cls(
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            {k: v for k, v in usage.items() if k not in USAGE_COUNTS},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            **self.details,
        }


def extra_fields(answer: dict[str, Any]) -> dict[str, Any]:
    """The fields of an upstream answer or chunk that the gateway passes through."""
    return {k: v for k, v in answer.items() if k not in OWN_KEYS}


@dataclass
class Delta:
    """One step of an answer: text, thinking, whole or partial tool calls, the end, usage."""

    content: str = ""
    reasoning: str = ""
    # OpenAI stream shape: {index, id?, type?, function{name?, arguments?}}; parts of one
    # call share its index.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    # Upstream fields passed through to the answer (see OWN_KEYS).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_output(self) -> bool:
        return bool(self.content or self.reasoning or self.tool_calls or self.logprobs)


@dataclass(frozen=True)
class Target:
    """One worker of one provider, serving one model."""

    provider: ProviderSpec
    model: ModelSpec
    worker: str  # base URL, as configured (e.g. http://host:11434/v1)

    @property
    def key(self) -> str:
        return f"{self.provider.id}|{self.worker}"


class UpstreamFailure(Exception):
    """A worker could not give a (complete) answer."""

    def __init__(self, worker: str, message: str) -> None:
        super().__init__(message)
        self.worker = worker
        self.message = message


class UpstreamUnreachable(UpstreamFailure):
    """Connection refused, reset or timed out before any response."""


class UpstreamHttpError(UpstreamFailure):
    """The worker answered with an error status before the first byte of the answer."""

    def __init__(
        self, worker: str, status: int, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(worker, message)
        self.status = status
        self.retry_after = retry_after


class UpstreamBadResponse(UpstreamFailure):
    """The worker answered with something that is not the API's wire format: invalid HTTP,
    a broken chunked encoding, non-JSON items, a line over the size limit."""


class UpstreamStreamError(UpstreamFailure):
    """The worker reported an error inside an answer that had already started."""


class UpstreamCut(UpstreamFailure):
    """The answer ended without its proper end (no finish, no [DONE], no done:true)."""


class UpstreamWrongApi(UpstreamFailure):
    """The worker does not serve the API its provider's `api` names (a config mistake)."""


class UpstreamTimeout(UpstreamFailure):
    """No first token in time, or the request deadline passed."""

    def __init__(self, worker: str, message: str, *, first_token: bool, idle: bool = False) -> None:
        super().__init__(worker, message)
        self.first_token = first_token
        self.idle = idle  # silence between two chunks of an answer that had started


class AnswerLimitReached(Exception):
    """The worker sent more than the request may make the gateway hold: stop reading and
    end the answer with finish_reason "length"."""


@dataclass(frozen=True)
class ReadLimits:
    """How much one upstream answer may send, and whom to tell when it was accepted."""

    max_line_bytes: int = 1024 * 1024  # one SSE line / NDJSON line
    max_total_bytes: int = 64 * 1024 * 1024  # the whole raw response body
    # Called once the worker answered 200 (it has accepted the request).
    on_accept: Callable[[], None] | None = None


DEFAULT_LIMITS = ReadLimits()


class ProviderAdapter(Protocol):
    """One provider wire format (`api` in the config)."""

    def stream(
        self,
        session: aiohttp.ClientSession,
        target: Target,
        request: ChatRequest,
        limits: ReadLimits = DEFAULT_LIMITS,
    ) -> AsyncGenerator[list[Delta], None]:
        """Deltas of one answer, a list per network read (never empty); ends after a
        finish (and usage, when the server sends it)."""
        ...

    async def probe(
        self, session: aiohttp.ClientSession, provider: ProviderSpec, worker: str
    ) -> WorkerProbe:
        """What the worker is, serves and has loaded; raises UpstreamFailure (with
        UpstreamWrongApi when it does not serve this API at all)."""
        ...


def bearer_headers(provider: ProviderSpec) -> dict[str, str]:
    """The provider's own key (never the gateway token), when it has one."""
    headers = {"Content-Type": "application/json"}
    rid = request_id.get()
    if rid:  # the worker's logs can be matched with the gateway's
        headers["X-Request-Id"] = rid
    if provider.api_key:
        headers["Authorization"] = f"Bearer {provider.api_key}"
    return headers


def public_url(url: str) -> str:
    """A worker URL fit for messages and logs: any user:password@ part is removed."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def with_default_tag(name: str) -> str:
    """`llama3.2` → `llama3.2:latest`, the way ollama lists models."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def stream_item(worker: str, text: str | bytes, what: str) -> dict[str, Any]:
    """One JSON object of a worker's stream; anything else fails the stream."""
    try:
        item = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:  # what orjson refuses but Python reads (NaN, lone surrogates): as before
            item = json.loads(text)
        except ValueError as exc:
            raise UpstreamBadResponse(worker, f"the worker sent a malformed {what}") from exc
    if not isinstance(item, dict):
        raise UpstreamBadResponse(worker, f"the worker sent a malformed {what}")
    return item
