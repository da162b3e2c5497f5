"""A stack with several named, scoped tokens (token file lines and config `auth.tokens`),
started once for the tenancy tests; every call goes through Envoy as a user's would."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from clawgate.common.auth import append_token_line, generate_token
from clawgate.launcher.stack import Stack, local_plan

MODEL = "qwen3:32b"
CHAT_PATH = "/api/v1/chat/completions"
# Limits of the tokens the rate-limit tests use (everyone else gets the default).
LIMITED_RPM = 3
STREAMS_MAX = 1
FAILED_AUTH_ATTEMPTS = 5


@dataclass
class Caller:
    """One token's REST client through Envoy."""

    name: str
    token: str
    base: str
    session: requests.Session = field(default_factory=requests.Session)

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.base + path, headers=headers, **kwargs)

    def from_address(self, address: str) -> Caller:
        """The same token calling from another loopback address (127.0.0.0/8)."""
        session = requests.Session()
        session.mount("http://", SourceAddressAdapter(address))
        return Caller(self.name, self.token, self.base, session)

    def chat(self, content: str, **extra: Any) -> requests.Response:
        headers = extra.pop("headers", {})
        body = {"model": extra.pop("model", MODEL), "max_tokens": 20,
                "messages": [{"role": "user", "content": content}], **extra}  # fmt: skip
        return self.call("POST", CHAT_PATH, json=body, headers=headers)


class SourceAddressAdapter(HTTPAdapter):
    def __init__(self, address: str) -> None:
        self._address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._address, 0)
        super().init_poolmanager(*args, **kwargs)


@dataclass
class Tenancy:
    stack: Stack
    callers: dict[str, Caller]

    def __getitem__(self, name: str) -> Caller:
        return self.callers[name]

    @property
    def standin(self) -> str:
        return self.stack.standins["main"]


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _config(urls: dict[str, str], failed_auth: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "providers": {
            "my-ollama": {
                "baseUrl": urls["main"] + "/v1",
                "apiKey": "ollama",
                "api": "openai-completions",
                "models": [{"id": MODEL, "name": "Local Qwen3 32B"}],
            }
        },
        "cache": {"ttlSeconds": 600, "namespace": "clawgate-tenancy"},  # isolateTokens: auto
        "chat": {"requestTimeoutSeconds": 60, "firstTokenTimeoutSeconds": 20},
        "auth": {
            # A token from the config (its value from the environment, as documented).
            "tokens": [{"name": "bob", "token": "${TENANCY_BOB_TOKEN}",
                        "scopes": ["chat", "agents:read", "agents:write"]}],
            "rateLimits": {
                # Limits are off unless configured; this suite's tokens get a default.
                "default": {"requestsPerMinute": 100000, "tokensPerMinute": 100000000,
                            "concurrentStreams": 256},
                "limited": {"requestsPerMinute": LIMITED_RPM, "tokensPerMinute": 0,
                            "concurrentStreams": 0},
                "thrifty": {"requestsPerMinute": 0, "tokensPerMinute": 1,
                            "concurrentStreams": 0},
                "streamer": {"requestsPerMinute": 0, "tokensPerMinute": 0,
                             "concurrentStreams": STREAMS_MAX},
            },
            "failedAuth": dict(failed_auth),
        },
    }  # fmt: skip


@contextlib.contextmanager
def tenancy_stack(state: Path, failed_auth: Mapping[str, Any]) -> Iterator[Tenancy]:
    bob = generate_token()
    plan = local_plan(
        state,
        {"main": (MODEL,)},
        lambda urls: _config(urls, failed_auth),
        extra_env={"TENANCY_BOB_TOKEN": bob},
    )
    tokens = {"admin": plan.token_file.read_text().split()[0], "bob": bob}
    # Token-file lines `name:scopes:token` next to the launcher's plain admin line.
    for name, scopes in [
        ("alice", "chat,agents:read,agents:write"),
        ("reader", "chat"),
        ("limited", "chat"),
        ("thrifty", "chat"),
        ("streamer", "chat"),
    ]:
        tokens[name] = generate_token()
        append_token_line(Path(plan.token_file), f"{name}:{scopes}:{tokens[name]}")
    running = Stack(plan)
    try:
        running.start()
        callers = {n: Caller(n, t, running.rest_url) for n, t in tokens.items()}
        yield Tenancy(running, callers)
    finally:
        running.stop()


@pytest.fixture(scope="package")
def tenancy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenancy]:
    # The failed-auth test calls from its own address (127.0.0.2), so it locks out no one
    # else; the other tests send a bad token rarely, from 127.0.0.1.
    settings = {"attempts": FAILED_AUTH_ATTEMPTS, "windowSeconds": 60}
    with tenancy_stack(tmp_path_factory.mktemp("tenancy"), settings) as running:
        yield running
