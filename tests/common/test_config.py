from __future__ import annotations

import json
from pathlib import Path

import pytest

from clawgate.common.config import ConfigError, load_config

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
