"""Upstream failures → what the client sees (R13), and whether retrying can help (R16).

The four common failures get distinct codes and advice: worker unreachable (503, names the
URL), model not pulled (404; `ollama pull` only when the server is ollama), busy (503 +
Retry-After), out of memory or context too long (advice to lower max_tokens or use a
smaller model). A worker that does not serve its provider's `api` is named as the config
mistake it is. Which server texts mean what is the adapters' knowledge (error_texts).
"""

from __future__ import annotations

import enum

from clawgate.common.config import API_OPENAI
from clawgate.common.errors import ApiError
from services.chat.providers import error_texts
from services.chat.providers.base import (
    Target,
    UpstreamBadResponse,
    UpstreamCut,
    UpstreamFailure,
    UpstreamHttpError,
    UpstreamStreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    UpstreamWrongApi,
    public_url,
)

BUSY_RETRY_AFTER_S = 2.0
UNREACHABLE_RETRY_AFTER_S = 5.0
MESSAGE_LIMIT = 300
SMALLER_ADVICE = "lower max_tokens or use a smaller model"


class Action(enum.Enum):
    RETRY = "retry"  # after a backoff, preferably on another worker
    FAILOVER = "failover"  # another worker may succeed; no point retrying this one
    FATAL = "fatal"  # the same request will fail everywhere


def classify(failure: UpstreamFailure) -> Action:
    if isinstance(failure, UpstreamWrongApi):
        return Action.FAILOVER
    if isinstance(failure, UpstreamUnreachable | UpstreamCut | UpstreamBadResponse):
        return Action.RETRY
    if isinstance(failure, UpstreamTimeout):
        return Action.RETRY if failure.first_token or failure.idle else Action.FATAL
    if isinstance(failure, UpstreamStreamError):
        return Action.FAILOVER if error_texts.cannot_run(failure.message) else Action.RETRY
    if isinstance(failure, UpstreamHttpError):
        status = failure.status
        if status in (408, 429, 502, 503, 504):
            return Action.RETRY
        if status == 404 and error_texts.model_missing(failure, API_OPENAI):
            return Action.FAILOVER
        if status >= 500:
            return Action.FAILOVER
    return Action.FATAL


def to_api_error(failure: UpstreamFailure, target: Target) -> ApiError:
    worker, model, text = public_url(failure.worker), target.model.id, _clip(failure.message)
    if isinstance(failure, UpstreamWrongApi):
        return ApiError(502, text, code="worker_misconfigured")
    if isinstance(failure, UpstreamUnreachable):
        return ApiError(
            503,
            f"the model server is not reachable at {worker}: {text}. Check that it is "
            "running and that the provider's baseUrl is right.",
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
        if error_texts.cannot_run(text):
            return _cannot_run_error(worker, model, text)
        return ApiError(
            502,
            f"the model server at {worker} failed during the answer: {text}",
            code="upstream_error",
        )
    assert isinstance(failure, UpstreamHttpError)
    return _http_error(failure, target, text)


def _http_error(failure: UpstreamHttpError, target: Target, text: str) -> ApiError:
    status, worker, model = failure.status, public_url(failure.worker), target.model.id
    if error_texts.model_missing(failure, target.provider.api):
        if error_texts.pull_fixes(failure):
            advice = f"Run `ollama pull {model}` on that machine."
        else:
            advice = "Check the model id in the provider's config against the server's models."
        return ApiError(
            404,
            f"model '{model}' is configured but the worker {worker} does not have it "
            f"(it says: {text}). {advice}",
            param="model",
            code="model_not_pulled",
        )
    if status in (404, 405):
        return ApiError(
            502,
            f"{worker} does not serve this API (HTTP {status}: {text}); check the provider's "
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
            f"the model server at {worker} is busy ({text}). Retry in a few seconds; if it keeps "
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
        if error_texts.cannot_run(text):
            return _cannot_run_error(worker, model, text)
        return ApiError(
            502,
            f"the model server at {worker} failed (HTTP {status}): {text}",
            code="upstream_error",
        )
    if error_texts.CONTEXT.search(text):
        return ApiError(
            400,
            f"the prompt does not fit the model's context: {text}. Shorten the messages, "
            f"{SMALLER_ADVICE}, or use a model with a larger context window.",
            param="messages",
            code="context_length_exceeded",
        )
    return ApiError(400, f"the model server rejected the request: {text}", code="upstream_rejected")


def _cannot_run_error(worker: str, model: str, text: str) -> ApiError:
    if error_texts.MEMORY.search(text):
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
        f"the model server at {worker} could not run '{model}': {text}. "
        f"{reason}: {SMALLER_ADVICE}.",
        code=code,
    )


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
