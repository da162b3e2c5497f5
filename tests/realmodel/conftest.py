"""The real stack (Envoy, Redis, services) in front of real llama.cpp servers running
SmolLM2-135M, started once for the whole package, plus an ollama stand-in for contrast.

Providers, each a case the gateway must report truthfully:
- `llama`: llama-server as an OpenAI-compatible worker, its model named by file path;
- `llama-keyed`: a second llama-server that requires an API key, model alias with `/`, `:`;
- `llama-wrong-key`: the keyed server with a wrong key;
- `llama-as-ollama`: the first server misconfigured as `api: ollama`;
- `ollama`: the ollama stand-in behind its /v1 layer.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from clawgate.launcher.processes import free_ports
from clawgate.launcher.stack import Stack, local_plan
from tests.realmodel import llama

KEYED_ALIAS = "local/smollm2:135m"
WRONG_API_MODEL = "wrong-api:135m"
WRONG_KEY_MODEL = "wrong-key:135m"
OLLAMA_MODEL = "qwen3:8b"
KEY_ENV = "CLAWGATE_TEST_LLAMA_KEY"
NO_CACHE = {"Cache-Control": "no-cache, no-store"}


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """The first truthy result of `condition`, polled until `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class RealModel:
    stack: Stack
    plain: llama.LlamaServer
    keyed: llama.LlamaServer

    @property
    def model(self) -> str:
        """The plain server's model id: the path of the GGUF file."""
        return self.plain.model_id

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.stack.rest_url + "/api/v1",
            api_key=self.stack.token,
            max_retries=0,
            timeout=60,
        )

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.token}"}


def _model(model_id: str) -> dict[str, Any]:
    # contextWindow above the servers' real 1024-token slots: the server's own limit is
    # what a too-long prompt runs into.
    return {"id": model_id, "name": model_id, "contextWindow": 32000, "maxTokens": 512}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not llama.available():  # said once, even under -q
        terminalreporter.write_line(f"tests/realmodel skipped: {llama.HOW_TO_BUILD}", yellow=True)


@pytest.fixture(scope="package")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealModel]:
    state = tmp_path_factory.mktemp("realmodel")
    key = secrets.token_urlsafe(16)
    # Two ports picked together: two free_port() calls can return the same port (the
    # keyed server then failed to bind and its URL reached the plain one).
    plain_port, keyed_port = free_ports(2)
    plain = llama.LlamaServer(state, port=plain_port)
    keyed = llama.LlamaServer(state, alias=KEYED_ALIAS, api_key=key, port=keyed_port)

    def config(standins: dict[str, str]) -> dict[str, Any]:
        return {
            "providers": {
                "llama": {"baseUrl": plain.url + "/v1", "api": "openai-completions",
                          "models": [_model(plain.model_id)]},
                "llama-keyed": {"baseUrl": keyed.url + "/v1", "api": "openai-completions",
                                "apiKey": "${" + KEY_ENV + "}", "models": [_model(KEYED_ALIAS)]},
                "llama-wrong-key": {"baseUrl": keyed.url + "/v1", "api": "openai-completions",
                                    "apiKey": "not-the-key", "models": [_model(WRONG_KEY_MODEL)]},
                "llama-as-ollama": {"baseUrl": plain.url, "api": "ollama",
                                    "models": [_model(WRONG_API_MODEL)]},
                "ollama": {"baseUrl": standins["ollama"] + "/v1", "api": "openai-completions",
                           "apiKey": "ollama", "models": [_model(OLLAMA_MODEL)]},
            },
            "cache": {"namespace": f"realmodel-{uuid.uuid4().hex[:8]}"},
            "chat": {"requestTimeoutSeconds": 60, "firstTokenTimeoutSeconds": 30,
                     "maxRetries": 1, "retryBackoffSeconds": 0.05},
        }  # fmt: skip

    plan = local_plan(state, {"ollama": (OLLAMA_MODEL,)}, config, extra_env={KEY_ENV: key})
    stack = Stack(plan)
    try:
        plain.start()
        keyed.start()
        stack.start()
        yield RealModel(stack, plain, keyed)
    finally:
        stack.stop()
        keyed.stop()
        plain.stop()
