"""The gateway configuration the end-to-end tests run with (see tests/conftest.py)."""

from __future__ import annotations

from typing import Any

# Models each stand-in ollama worker has pulled.
STANDIN_MODELS: dict[str, tuple[str, ...]] = {
    "main": ("qwen3:32b", "llama3.2:latest", "gemma3:4b"),
    "pool-a": ("qwen3:8b",),
    "pool-b": ("qwen3:8b",),
}


def _model(model_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": model_id,
        "name": extra.pop("name", model_id),
        "reasoning": extra.pop("reasoning", False),
        "input": ["text"],
        "contextWindow": extra.pop("contextWindow", 32000),
        "maxTokens": extra.pop("maxTokens", 4096),
        "cost": extra.pop("cost", {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0}),
    }


def gateway_config(standins: dict[str, str]) -> dict[str, Any]:
    """Providers in the product's shape (MISSION.md R6), pointing at the stand-ins."""
    return {
        "providers": {
            "my-ollama": {
                "baseUrl": standins["main"] + "/v1",
                "apiKey": "ollama",
                "api": "openai-completions",
                "models": [
                    _model(
                        "qwen3:32b",
                        name="Local Qwen3 32B",
                        reasoning=True,
                        cost={"input": 0.6, "output": 2.4, "cacheRead": 0.06, "cacheWrite": 0},
                    ),
                    _model("llama3.2:latest", contextWindow=8192, maxTokens=2048),
                    # Configured but not pulled on the worker.
                    _model("ghost:7b"),
                ],
            },
            "native-ollama": {
                "baseUrl": standins["main"],
                "apiKey": "ollama",
                "api": "ollama",
                "models": [_model("gemma3:4b", contextWindow=8192, maxTokens=2048)],
            },
            "pool": {
                "baseUrl": standins["pool-a"] + "/v1",
                "baseUrls": [standins["pool-b"] + "/v1"],
                "apiKey": "ollama",
                "api": "openai-completions",
                "models": [_model("qwen3:8b", reasoning=True)],
            },
        },
        "cache": {"ttlSeconds": 600, "namespace": "clawgate-test"},
        "chat": {"requestTimeoutSeconds": 60, "firstTokenTimeoutSeconds": 20, "maxRetries": 2,
                 "retryBackoffSeconds": 0.05},
        # Every test calls from 127.0.0.1 with one token, as fast as it can: limits off here.
        # tests/tenancy runs its own stack with them on.
        "auth": {"failedAuth": {"attempts": 0},
                 "rateLimits": {"default": {"requestsPerMinute": 0, "tokensPerMinute": 0,
                                            "concurrentStreams": 0}}},
    }  # fmt: skip
