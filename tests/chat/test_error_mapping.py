"""Upstream failures become errors that tell the common failures apart (R13)."""

from __future__ import annotations

import pytest

from clawgate.common.config import ModelSpec, ProviderSpec
from services.chat.errors import Action, classify, to_api_error
from services.chat.pipeline import backoff_delay
from services.chat.providers.base import (
    Target,
    UpstreamCut,
    UpstreamFailure,
    UpstreamHttpError,
    UpstreamStreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

WORKER = "http://10.0.0.7:11434/v1"
TARGET = Target(
    ProviderSpec("my-ollama", "openai-completions", (WORKER,), "secret-key"),
    ModelSpec("qwen3:32b", "Qwen"),
    WORKER,
)


@pytest.mark.parametrize(
    ("failure", "status", "code", "action", "fragments"),
    [
        (
            UpstreamUnreachable(WORKER, "connection failed (connection refused)"),
            503,
            "upstream_unreachable",
            Action.RETRY,
            [WORKER, "connection refused", "baseUrl"],
        ),
        (
            UpstreamHttpError(WORKER, 404, "model 'qwen3:32b' not found"),
            404,
            "model_not_pulled",
            Action.FAILOVER,
            ["ollama pull qwen3:32b", WORKER],
        ),
        (
            UpstreamHttpError(WORKER, 404, 'model "qwen3:32b" not found, try pulling it first'),
            404,
            "model_not_pulled",
            Action.FAILOVER,
            ["ollama pull qwen3:32b"],
        ),
        (
            UpstreamHttpError(WORKER, 404, "404 page not found"),
            502,
            "upstream_bad_path",
            Action.FATAL,
            ["baseUrl"],
        ),
        (
            UpstreamHttpError(
                WORKER, 503, "server busy, please try again.  maximum pending requests exceeded"
            ),
            503,
            "upstream_busy",
            Action.RETRY,
            ["busy", "lower max_tokens or use a smaller model"],
        ),
        (
            UpstreamHttpError(
                WORKER,
                500,
                "model requires more system memory (21.4 GiB) than is available (8.0 GiB)",
            ),
            503,
            "insufficient_gpu_memory",
            Action.FAILOVER,
            ["lower max_tokens or use a smaller model"],
        ),
        (
            UpstreamHttpError(WORKER, 500, "timed out waiting for llama-server to start"),
            503,
            "model_load_failed",
            Action.FAILOVER,
            ["smaller model"],
        ),
        (
            UpstreamHttpError(WORKER, 500, "unexpected EOF"),
            502,
            "upstream_error",
            Action.FAILOVER,
            [],
        ),
        (
            UpstreamHttpError(WORKER, 400, '"llama3.2" does not support thinking'),
            400,
            "upstream_rejected",
            Action.FATAL,
            ["does not support thinking"],
        ),
        (
            UpstreamHttpError(WORKER, 400, "input length exceeds the context length"),
            400,
            "context_length_exceeded",
            Action.FATAL,
            ["lower max_tokens"],
        ),
        (
            UpstreamHttpError(WORKER, 401, "bad key"),
            502,
            "upstream_auth_failed",
            Action.FATAL,
            ["apiKey"],
        ),
        (
            UpstreamHttpError(WORKER, 429, "slow down", retry_after=7),
            429,
            "rate_limit_exceeded",
            Action.RETRY,
            ["rate limiting"],
        ),
        (
            UpstreamTimeout(WORKER, "No first token within 1s.", first_token=True),
            504,
            "upstream_timeout",
            Action.RETRY,
            ["loading"],
        ),
        (
            UpstreamTimeout(WORKER, "deadline", first_token=False),
            504,
            "request_timeout",
            Action.FATAL,
            [],
        ),
        (UpstreamCut(WORKER, "ended early"), 502, "upstream_incomplete", Action.RETRY, ["stopped"]),
        (
            UpstreamStreamError(WORKER, "CUDA error: out of memory"),
            503,
            "insufficient_gpu_memory",
            Action.FAILOVER,
            ["smaller model"],
        ),
    ],
)
def test_failure_mapping(
    failure: UpstreamFailure, status: int, code: str, action: Action, fragments: list[str]
) -> None:
    error = to_api_error(failure, TARGET)
    assert (error.status, error.code) == (status, code)
    assert classify(failure) is action
    for fragment in fragments:
        assert fragment in error.message
    assert "secret-key" not in error.message


def test_busy_and_unreachable_say_when_to_retry() -> None:
    busy = to_api_error(UpstreamHttpError(WORKER, 503, "busy"), TARGET)
    down = to_api_error(UpstreamUnreachable(WORKER, "refused"), TARGET)
    limited = to_api_error(UpstreamHttpError(WORKER, 429, "x", retry_after=7), TARGET)
    assert busy.retry_after and down.retry_after and limited.retry_after == 7


def test_backoff_grows_exponentially_with_jitter() -> None:
    for retry in range(4):
        delays = [backoff_delay(0.5, retry) for _ in range(50)]
        assert all(0.25 * 2**retry <= d <= 0.5 * 2**retry for d in delays)
        assert len(set(delays)) > 1


def test_credentials_in_a_worker_url_never_reach_the_client() -> None:
    worker = "http://admin:hunter2@gpu-box:11434/v1"
    target = Target(ProviderSpec("p", "ollama", (worker,)), ModelSpec("m", "m"), worker)
    error = to_api_error(UpstreamUnreachable(worker, "refused"), target)
    assert "hunter2" not in error.message and "http://gpu-box:11434/v1" in error.message


def test_only_ollama_is_told_to_pull() -> None:
    # vLLM's words for a model it does not serve: the fix is the config, not `ollama pull`.
    vllm = UpstreamHttpError(WORKER, 404, "The model `qwen3:32b` does not exist.")
    error = to_api_error(vllm, TARGET)
    assert (error.status, error.code) == (404, "model_not_pulled")
    assert "ollama" not in error.message and "model id" in error.message
    assert classify(vllm) is Action.FAILOVER


def test_no_ollama_advice_for_other_servers() -> None:
    for failure in (
        UpstreamUnreachable(WORKER, "connection failed (connection refused)"),
        UpstreamHttpError(WORKER, 503, "Loading model"),
        UpstreamHttpError(WORKER, 500, "boom"),
        UpstreamStreamError(WORKER, "boom"),
    ):
        assert "ollama" not in to_api_error(failure, TARGET).message
