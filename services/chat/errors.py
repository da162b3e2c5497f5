"""Upstream failures → what the client sees (R13), and whether retrying can help (R16).

The four common failures get distinct codes and advice: worker unreachable (503, names the
URL), model not pulled (404, `ollama pull`), busy (503 + Retry-After), out of memory or
context too long (advice to lower max_tokens or use a smaller model).
"""

from __future__ import annotations

import enum
import re

from clawgate.common.errors import ApiError
from services.chat.providers.base import (
    Target,
    UpstreamBadResponse,
    UpstreamCut,
    UpstreamFailure,
    UpstreamHttpError,
    UpstreamStreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    public_url,
)

BUSY_RETRY_AFTER_S = 2.0
UNREACHABLE_RETRY_AFTER_S = 5.0
MESSAGE_LIMIT = 300
SMALLER_ADVICE = "lower max_tokens or use a smaller model"

_MEMORY = re.compile(
    r"memory|out of vram|cuda error|\boom\b|insufficient|unable to allocate", re.IGNORECASE
)
_LOAD = re.compile(r"llama-server|failed to load|model runner|runner process", re.IGNORECASE)
_CONTEXT = re.compile(r"context|too long|exceeds|maximum.*tokens", re.IGNORECASE)
_NOT_FOUND = re.compile(r"not found|does not exist|no such model|try pulling", re.IGNORECASE)


class Action(enum.Enum):
    RETRY = "retry"  # after a backoff, preferably on another worker
    FAILOVER = "failover"  # another worker may succeed; no point retrying this one
    FATAL = "fatal"  # the same request will fail everywhere


def classify(failure: UpstreamFailure) -> Action:
    if isinstance(failure, UpstreamUnreachable | UpstreamCut | UpstreamBadResponse):
        return Action.RETRY
    if isinstance(failure, UpstreamTimeout):
        return Action.RETRY if failure.first_token or failure.idle else Action.FATAL
    if isinstance(failure, UpstreamStreamError):
        return Action.FAILOVER if _cannot_run(failure.message) else Action.RETRY
    if isinstance(failure, UpstreamHttpError):
        status = failure.status
        if status in (408, 429, 502, 503, 504):
            return Action.RETRY
        if status == 404 and _is_model_not_found(failure):
            return Action.FAILOVER
        if status >= 500:
            return Action.FAILOVER
    return Action.FATAL


def to_api_error(failure: UpstreamFailure, target: Target) -> ApiError:
    worker, model, text = public_url(failure.worker), target.model.id, _clip(failure.message)
    if isinstance(failure, UpstreamUnreachable):
        return ApiError(
            503,
            f"ollama is not reachable at {worker}: {text}. Check that the server is running "
            "(`ollama serve`) and that the provider's baseUrl is right.",
            code="upstream_unreachable",
            retry_after=UNREACHABLE_RETRY_AFTER_S,
        )
    if isinstance(failure, UpstreamBadResponse):
        return ApiError(
            502,
            f"the model server at {worker} sent an invalid response: {text}. Check that the "
            "provider's baseUrl points at a model server and that it is healthy.",
            code="upstream_bad_response",
        )
    if isinstance(failure, UpstreamTimeout):
        if failure.idle:
            return ApiError(504, text, code="upstream_idle_timeout")
        if failure.first_token:
            return ApiError(
                504,
                f"{text} The model may still be loading on {worker}; retry later, "
                f"or {SMALLER_ADVICE}.",
                code="upstream_timeout",
            )
        return ApiError(504, text, code="request_timeout")
    if isinstance(failure, UpstreamCut):
        return ApiError(
            502,
            f"the answer from {worker} stopped before it was finished: {text}",
            code="upstream_incomplete",
        )
    if isinstance(failure, UpstreamStreamError):
        if _cannot_run(text):
            return _cannot_run_error(worker, model, text)
        return ApiError(
            502, f"ollama at {worker} failed during the answer: {text}", code="upstream_error"
        )
    assert isinstance(failure, UpstreamHttpError)
    return _http_error(failure, target, text)


def _http_error(failure: UpstreamHttpError, target: Target, text: str) -> ApiError:
    status, worker, model = failure.status, public_url(failure.worker), target.model.id
    if status == 404 and _is_model_not_found(failure):
        return ApiError(
            404,
            f"model '{model}' is configured but not pulled on the ollama worker {worker} "
            f"(it says: {text}). Run `ollama pull {model}` on that machine.",
            param="model",
            code="model_not_pulled",
        )
    if status == 404:
        return ApiError(
            502,
            f"{worker} does not serve this API (HTTP 404: {text}); check the provider's "
            f"baseUrl and api ('{target.provider.api}').",
            code="upstream_bad_path",
        )
    if status in (401, 403):
        return ApiError(
            502,
            f"the provider '{target.provider.id}' at {worker} refused the gateway's API key "
            f"(HTTP {status}); check the provider's apiKey.",
            code="upstream_auth_failed",
        )
    if status == 429:
        return ApiError(
            429,
            f"the model server at {worker} is rate limiting requests: {text}",
            code="rate_limit_exceeded",
            retry_after=failure.retry_after or BUSY_RETRY_AFTER_S,
        )
    if status == 503:
        return ApiError(
            503,
            f"ollama at {worker} is busy ({text}). Retry in a few seconds; if it keeps "
            f"happening, {SMALLER_ADVICE}, or add workers.",
            code="upstream_busy",
            retry_after=failure.retry_after or BUSY_RETRY_AFTER_S,
        )
    if status in (408, 502, 504):
        return ApiError(
            status if status != 408 else 504,
            f"the model server at {worker} did not answer in time (HTTP {status}: {text})",
            code="upstream_timeout",
            retry_after=failure.retry_after or BUSY_RETRY_AFTER_S,
        )
    if status >= 500:
        if _cannot_run(text):
            return _cannot_run_error(worker, model, text)
        return ApiError(
            502, f"ollama at {worker} failed (HTTP {status}): {text}", code="upstream_error"
        )
    if _CONTEXT.search(text):
        return ApiError(
            400,
            f"the prompt does not fit the model's context: {text}. Shorten the messages, "
            f"{SMALLER_ADVICE}, or use a model with a larger context window.",
            param="messages",
            code="context_length_exceeded",
        )
    return ApiError(400, f"the model server rejected the request: {text}", code="upstream_rejected")


def _cannot_run(text: str) -> bool:
    return bool(_MEMORY.search(text) or _LOAD.search(text))


def _cannot_run_error(worker: str, model: str, text: str) -> ApiError:
    if _MEMORY.search(text):
        reason, code = (
            "The model and its context do not fit in GPU memory",
            "insufficient_gpu_memory",
        )
    else:
        reason, code = (
            "The model could not be loaded (often a lack of GPU memory)",
            "model_load_failed",
        )
    return ApiError(
        503,
        f"ollama at {worker} could not run '{model}': {text}. {reason}: {SMALLER_ADVICE}.",
        code=code,
    )


def _is_model_not_found(failure: UpstreamHttpError) -> bool:
    # gin's own 404 ("404 page not found") means a wrong path, not a missing model.
    return "page not found" not in failure.message and bool(_NOT_FOUND.search(failure.message))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
