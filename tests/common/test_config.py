from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clawgate.common.config import (
    DEFAULT_CHAT_PROCESSES,
    MAX_CHAT_PROCESSES,
    ConfigError,
    ServiceAddrs,
    chat_processes,
    load_config,
)

R6 = {
    "my-ollama": {
        "baseUrl": "http://127.0.0.1:11434/v1",
        "apiKey": "ollama",
        "api": "openai-completions",
        "models": [
            {
                "id": "qwen3:32b",
                "name": "Local Qwen3 32B",
                "reasoning": False,
                "input": ["text"],
                "contextWindow": 32000,
                "maxTokens": 4096,
                "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
            }
        ],
    }
}


def test_product_provider_shape_is_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"providers": R6}))
    config = load_config(str(path), env={})
    (provider,) = config.providers
    assert provider.id == "my-ollama"
    assert provider.base_url == "http://127.0.0.1:11434/v1"
    assert provider.api == "openai-completions"
    (model,) = provider.models
    assert (model.id, model.name, model.context_window, model.max_tokens) == (
        "qwen3:32b",
        "Local Qwen3 32B",
        32000,
        4096,
    )
    assert config.find_model("qwen3:32b")[0][0] is provider


def test_defaults_without_a_file_are_the_product_description(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(env={})
    assert [m.id for _, m in config.models()] == ["qwen3:32b"]
    assert config.gateway.port == 8000


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("redisUrl: redis://file:1/0\ngateway: {port: 9000}\n")
    env = {
        "CLAWGATE_REDIS_URL": "redis://env:2/0",
        "CLAWGATE_CHAT_ADDR": "chat:1",
        "CLAWGATE_OLLAMA_URL": "http://a:11434/v1,http://b:11434/v1",
    }
    config = load_config(str(path), env=env)
    assert config.redis_url == "redis://env:2/0"
    assert config.gateway.port == 9000
    assert config.services.chat == "chat:1"
    assert config.providers[0].workers == ("http://a:11434/v1", "http://b:11434/v1")


def test_secrets_come_from_the_environment_and_stay_out_of_repr(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    provider = dict(R6["my-ollama"], apiKey="${MY_KEY}")
    path.write_text(json.dumps({"providers": {"p": provider}}))
    config = load_config(str(path), env={"MY_KEY": "s3cret-value"})
    assert config.providers[0].api_key == "s3cret-value"
    assert "s3cret-value" not in repr(config)
    with pytest.raises(ConfigError, match="MY_KEY"):
        load_config(str(path), env={})


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ({"api": "openai-completions", "models": []}, "baseUrl"),
        ({"baseUrl": "ftp://x", "models": []}, "http"),
        ({"baseUrl": "http://x", "api": "grpc"}, "api"),
        ({"baseUrl": "http://x", "models": [{"name": "no id"}]}, "id"),
        ({"baseUrl": "http://x", "models": [{"id": "m", "maxTokens": "big"}]}, "maxTokens"),
    ],
)
def test_bad_provider_config_says_what_to_fix(
    tmp_path: Path, provider: dict[str, object], message: str
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"providers": {"p": provider}}))
    with pytest.raises(ConfigError, match=message):
        load_config(str(path), env={})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("false", False), ("False", False), ("no", False), ("0", False), (False, False), (0, False),
     ("true", True), ("yes", True), ("1", True), (True, True), ("on", True)],
)  # fmt: skip
def test_booleans_read_quoted_words_as_written(tmp_path: Path, raw: object, expected: bool) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"cache": {"enabled": raw, "isolateTokens": raw}}))
    config = load_config(str(path), env={})
    assert config.cache.enabled is expected
    assert config.cache.isolate_tokens is expected
    env_config = load_config(str(path), env={"CLAWGATE_CACHE_ENABLED": str(raw).lower()})
    assert env_config.cache.enabled is expected


def test_a_model_marked_reasoning_false_in_quotes_is_not_reasoning(tmp_path: Path) -> None:
    provider = json.loads(json.dumps(R6["my-ollama"]))
    provider["models"][0]["reasoning"] = "false"
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"providers": {"p": provider}}))
    assert load_config(str(path), env={}).providers[0].models[0].reasoning is False


@pytest.mark.parametrize(
    ("env", "file", "message"),
    [
        ({"CLAWGATE_PORT": "abc"}, {},
         "CLAWGATE_PORT: expected a port number 1-65535, got 'abc'"),
        ({"CLAWGATE_PORT": "70000"}, {}, "CLAWGATE_PORT: expected a port number 1-65535"),
        ({"CLAWGATE_CACHE_ENABLED": "maybe"}, {},
         "CLAWGATE_CACHE_ENABLED: expected true or false, got 'maybe'"),
        ({"CLAWGATE_CACHE_TTL": "1h"}, {}, "CLAWGATE_CACHE_TTL: expected an integer >= 1"),
        ({"CLAWGATE_REQUEST_TIMEOUT": "-5"}, {}, "CLAWGATE_REQUEST_TIMEOUT: expected a number"),
        ({}, {"gateway": {"adminPort": "x"}}, "gateway.adminPort: expected a port number"),
        ({}, {"cache": {"isolateTokens": "sometimes"}}, "cache.isolateTokens: expected true"),
        ({}, {"chat": {"maxRetries": 1.5}}, "chat.maxRetries: expected an integer >= 0"),
        ({}, {"gateway": {"maxConnections": 0}}, "gateway.maxConnections: expected an integer"),
        ({}, {"gateway": "8000"}, "gateway: expected an object"),
        ({}, {"gateway": {"streamIdleTimeoutSeconds": 60},
              "chat": {"firstTokenTimeoutSeconds": 120}}, "must exceed chat.firstToken"),
        ({"CLAWGATE_PROVIDERS": "/no/such/file.json"}, {}, "CLAWGATE_PROVIDERS: cannot read"),
        ({}, {"chat": {"processes": 0}}, 'chat.processes: expected an integer 1-8 or "auto"'),
        ({"CLAWGATE_CHAT_PROCESSES": "many"}, {}, "CLAWGATE_CHAT_PROCESSES: expected an integ"),
    ],
)  # fmt: skip
def test_bad_values_name_the_setting(
    tmp_path: Path, env: dict[str, str], file: dict[str, object], message: str
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(file))
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), env=env)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_edge_limits_come_from_the_gateway_section(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("gateway: {requestHeadersTimeoutSeconds: 2.5, maxConnections: '500'}\n")
    limits = load_config(str(path), env={}).gateway.limits
    assert (limits.request_headers_timeout_s, limits.max_connections) == (2.5, 500)


@pytest.mark.parametrize(
    "argv",
    [["-m", "services.chat"], ["-m", "services.agents"], ["-m", "services.health"],
     ["-m", "clawgate.cli", "onboard"]],
    ids=["chat", "agents", "health", "onboard"],
)  # fmt: skip
def test_processes_stop_with_one_line_on_a_bad_setting(tmp_path: Path, argv: list[str]) -> None:
    env = {**os.environ, "CLAWGATE_PORT": "abc", "CLAWGATE_STATE_DIR": str(tmp_path)}
    env.pop("CLAWGATE_CONFIG", None)
    done = subprocess.run(
        [sys.executable, *argv], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == (
        "config error: CLAWGATE_PORT: expected a port number 1-65535, got 'abc'"
    ), done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_chat_processes_from_the_file_or_environment_and_auto_is_the_cpu_count(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"chat": {"processes": 3}}))
    assert load_config(None, env={}).chat.processes == DEFAULT_CHAT_PROCESSES == 1
    assert load_config(str(path), env={}).chat.processes == 3
    auto = load_config(str(path), env={"CLAWGATE_CHAT_PROCESSES": "auto"}).chat
    assert auto.processes == max(1, min(os.cpu_count() or 1, MAX_CHAT_PROCESSES))
    assert chat_processes("2", "--workers") == 2


def test_every_chat_process_address_comes_from_the_environment() -> None:
    env = {"CLAWGATE_CHAT_ADDRS": "127.0.0.1:7001,127.0.0.1:7002", "CLAWGATE_CHAT_PROCESSES": "2",
           "CLAWGATE_CHAT_PROCESS_INDEX": "1"}  # fmt: skip
    config = load_config(None, env=env)
    assert config.services.chat == "127.0.0.1:7001"
    assert config.services.processes("chat") == {"chat": "127.0.0.1:7001",
                                                 "chat:2": "127.0.0.1:7002"}  # fmt: skip
    assert config.services.processes("agents") == {"agents": "127.0.0.1:50052"}
    assert config.services.dial_target("chat") == "ipv4:127.0.0.1:7001,127.0.0.1:7002"
    assert (config.chat.processes, config.chat.process_index) == (2, 1)
    # What the launcher hands its children reads back the same.
    assert load_config(None, env=config.services.env()).services == config.services
    with pytest.raises(ValueError, match="only one process of agents"):
        ServiceAddrs({}, {"agents": ["127.0.0.1:1", "127.0.0.1:2"]})
