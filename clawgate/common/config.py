"""Configuration: one file (JSON or YAML) plus environment variables that override it.

The file is found at $CLAWGATE_CONFIG, else ./clawgate.yaml or ./clawgate.json, else the
built-in defaults (one local ollama serving qwen3:32b, as in the product description).
Providers use the product's own shape (MISSION.md R6). String values may reference the
environment as `${NAME}`, so secrets such as provider keys stay out of the file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clawgate.common.services import SERVICES
from clawgate.common.services import ServiceAddrs as ServiceAddrs  # config.services' type

API_OPENAI = "openai-completions"
API_OLLAMA = "ollama"
SUPPORTED_APIS = (API_OPENAI, API_OLLAMA)

DEFAULT_PROVIDERS: dict[str, Any] = {
    "my-ollama": {
        "baseUrl": "http://127.0.0.1:11434/v1",
        "apiKey": "ollama",
        "api": API_OPENAI,
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


class ConfigError(ValueError):
    """The configuration cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Cost:
    """USD per million tokens."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    reasoning: bool = False
    input: tuple[str, ...] = ("text",)
    context_window: int = 32000
    max_tokens: int = 4096
    cost: Cost = field(default_factory=Cost)


@dataclass(frozen=True)
class ProviderSpec:
    id: str
    api: str
    # Every worker serving this provider's models; the first is the config's `baseUrl`.
    workers: tuple[str, ...]
    api_key: str = field(default="", repr=False)
    models: tuple[ModelSpec, ...] = ()

    @property
    def base_url(self) -> str:
        return self.workers[0]


@dataclass(frozen=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 8000
    admin_port: int = 9901


@dataclass(frozen=True)
class CacheSettings:
    enabled: bool = True
    ttl_seconds: int = 3600
    namespace: str = "clawgate"
    # Separate cache entries per gateway token, so one token's owner never sees another's.
    isolate_tokens: bool = False
    # Longest a cache read or write may take before it is skipped (Redis slow or down).
    op_timeout_ms: int = 50
    # Longest a request waits for an identical in-flight request before calling upstream.
    single_flight_wait_s: float = 30.0


@dataclass(frozen=True)
class ChatSettings:
    # Whole-request deadline when the client gives none (REST); gRPC deadlines win.
    request_timeout_s: float = 300.0
    # Longest wait for the first token (covers model load on a cold worker).
    first_token_timeout_s: float = 120.0
    # Retries of retryable upstream failures before the first byte reached the client.
    max_retries: int = 2
    retry_backoff_s: float = 0.5
    connect_timeout_s: float = 5.0


@dataclass(frozen=True)
class Config:
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    services: ServiceAddrs = field(default_factory=ServiceAddrs)  # where to dial each service
    listen: ServiceAddrs = field(default_factory=ServiceAddrs)  # where each one listens
    redis_url: str = "redis://127.0.0.1:6379/0"
    cache: CacheSettings = field(default_factory=CacheSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    providers: tuple[ProviderSpec, ...] = ()
    state_dir: str = ".clawgate"
    log_level: str = "info"
    source: str = "defaults"

    def models(self) -> list[tuple[ProviderSpec, ModelSpec]]:
        """Every configured model with its provider, in config order."""
        return [(p, m) for p in self.providers for m in p.models]

    def find_model(self, model_id: str) -> list[tuple[ProviderSpec, ModelSpec]]:
        """The providers serving `model_id` (several providers may serve one model)."""
        return [(p, m) for p, m in self.models() if m.id == model_id]

    def worker_urls(self) -> list[tuple[ProviderSpec, str]]:
        return [(p, w) for p in self.providers for w in p.workers]


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                raise ConfigError(f"config references ${{{name}}}, which is not set")
            return env[name]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, env) for k, v in value.items()}
    return value


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"config file {path} is not valid JSON/YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold an object at the top level")
    return data


def _num(raw: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}.{key} must be a number, got {value!r}")
    return float(value)


def _parse_model(raw: Any, where: str) -> ModelSpec:
    if isinstance(raw, str):
        raw = {"id": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
        raise ConfigError(f"{where} needs an `id` (the model name the server knows)")
    cost_raw = raw.get("cost") or {}
    if not isinstance(cost_raw, dict):
        raise ConfigError(f"{where}.cost must be an object")
    cost = Cost(
        input=_num(cost_raw, "input", 0, f"{where}.cost"),
        output=_num(cost_raw, "output", 0, f"{where}.cost"),
        cache_read=_num(cost_raw, "cacheRead", 0, f"{where}.cost"),
        cache_write=_num(cost_raw, "cacheWrite", 0, f"{where}.cost"),
    )
    inputs = raw.get("input", ["text"])
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise ConfigError(f"{where}.input must be a list of strings")
    context_window = int(_num(raw, "contextWindow", 32000, where))
    max_tokens = int(_num(raw, "maxTokens", 4096, where))
    if context_window <= 0 or max_tokens <= 0:
        raise ConfigError(f"{where}: contextWindow and maxTokens must be positive")
    return ModelSpec(
        id=raw["id"],
        name=str(raw.get("name") or raw["id"]),
        reasoning=bool(raw.get("reasoning", False)),
        input=tuple(inputs),
        context_window=context_window,
        max_tokens=max_tokens,
        cost=cost,
    )


def _parse_provider(pid: str, raw: Any) -> ProviderSpec:
    where = f"providers.{pid}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be an object")
    api = raw.get("api", API_OPENAI)
    if api not in SUPPORTED_APIS:
        raise ConfigError(f"{where}.api is {api!r}; use one of {', '.join(SUPPORTED_APIS)}")
    urls: list[str] = []
    if raw.get("baseUrl"):
        urls.append(str(raw["baseUrl"]))
    extra = raw.get("baseUrls", [])
    if not isinstance(extra, list):
        raise ConfigError(f"{where}.baseUrls must be a list of URLs")
    urls.extend(str(u) for u in extra if str(u) not in urls)
    if not urls:
        raise ConfigError(f"{where} needs a `baseUrl`, e.g. http://127.0.0.1:11434/v1")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: {url!r} is not an http(s) URL")
    models_raw = raw.get("models", [])
    if not isinstance(models_raw, list):
        raise ConfigError(f"{where}.models must be a list")
    models = tuple(_parse_model(m, f"{where}.models[{i}]") for i, m in enumerate(models_raw))
    return ProviderSpec(
        id=pid,
        api=api,
        workers=tuple(u.rstrip("/") for u in urls),
        api_key=str(raw.get("apiKey", "")),
        models=models,
    )


def parse_providers(raw: Any) -> tuple[ProviderSpec, ...]:
    if not isinstance(raw, dict):
        raise ConfigError("providers must be an object keyed by provider id")
    return tuple(_parse_provider(pid, p) for pid, p in raw.items())


def _env_bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _providers_from_env(value: str) -> Any:
    """$CLAWGATE_PROVIDERS holds the providers JSON, or the path of a file with it."""
    text = value.strip()
    if not text.startswith("{"):
        text = Path(text).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError as e:
        raise ConfigError(f"CLAWGATE_PROVIDERS is not valid JSON: {e}") from e


def load_config(path: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the config file (if any), then apply environment overrides."""
    env = os.environ if env is None else env
    chosen = path or env.get("CLAWGATE_CONFIG")
    data: dict[str, Any] = {}
    source = "defaults"
    if chosen:
        data = _read_file(Path(chosen))
        source = chosen
    else:
        for candidate in ("clawgate.yaml", "clawgate.yml", "clawgate.json"):
            if Path(candidate).is_file():
                data = _read_file(Path(candidate))
                source = candidate
                break
    data = _expand(data, env)

    gw = data.get("gateway", {}) or {}
    gateway = GatewaySettings(
        host=str(env.get("CLAWGATE_HOST", gw.get("host", "127.0.0.1"))),
        port=int(env.get("CLAWGATE_PORT", gw.get("port", 8000))),
        admin_port=int(env.get("CLAWGATE_ADMIN_PORT", gw.get("adminPort", 9901))),
    )
    sv = data.get("services", {}) or {}
    services = ServiceAddrs(
        {s.name: str(env.get(s.addr_env, sv.get(s.name, s.default_addr))) for s in SERVICES}
    )
    listen = ServiceAddrs({s.name: env.get(s.listen_env, services[s.name]) for s in SERVICES})
    cr = data.get("cache", {}) or {}
    cache = CacheSettings(
        enabled=_env_bool(env["CLAWGATE_CACHE_ENABLED"])
        if "CLAWGATE_CACHE_ENABLED" in env
        else bool(cr.get("enabled", True)),
        ttl_seconds=int(env.get("CLAWGATE_CACHE_TTL", cr.get("ttlSeconds", 3600))),
        namespace=str(env.get("CLAWGATE_CACHE_NAMESPACE", cr.get("namespace", "clawgate"))),
        isolate_tokens=bool(cr.get("isolateTokens", False)),
        op_timeout_ms=int(cr.get("opTimeoutMs", 50)),
        single_flight_wait_s=float(cr.get("singleFlightWaitSeconds", 30.0)),
    )
    ch = data.get("chat", {}) or {}
    chat = ChatSettings(
        request_timeout_s=float(
            env.get("CLAWGATE_REQUEST_TIMEOUT", ch.get("requestTimeoutSeconds", 300.0))
        ),
        first_token_timeout_s=float(
            env.get("CLAWGATE_FIRST_TOKEN_TIMEOUT", ch.get("firstTokenTimeoutSeconds", 120.0))
        ),
        max_retries=int(ch.get("maxRetries", 2)),
        retry_backoff_s=float(ch.get("retryBackoffSeconds", 0.5)),
        connect_timeout_s=float(ch.get("connectTimeoutSeconds", 5.0)),
    )
    if "CLAWGATE_PROVIDERS" in env:
        providers_raw = _providers_from_env(env["CLAWGATE_PROVIDERS"])
    else:
        providers_raw = data.get("providers")
        if providers_raw is None:
            providers_raw = (data.get("models") or {}).get("providers", DEFAULT_PROVIDERS)
    providers = parse_providers(providers_raw)
    if "CLAWGATE_OLLAMA_URL" in env and providers:
        # Point the first provider at other workers (comma-separated), e.g. in compose.
        urls = tuple(u.strip().rstrip("/") for u in env["CLAWGATE_OLLAMA_URL"].split(",") if u)
        first = providers[0]
        providers = (
            ProviderSpec(first.id, first.api, urls, first.api_key, first.models),
            *providers[1:],
        )
    return Config(
        gateway=gateway,
        services=services,
        listen=listen,
        redis_url=env.get("CLAWGATE_REDIS_URL", data.get("redisUrl", Config.redis_url)),
        cache=cache,
        chat=chat,
        providers=providers,
        state_dir=env.get("CLAWGATE_STATE_DIR", data.get("stateDir", ".clawgate")),
        log_level=env.get("CLAWGATE_LOG_LEVEL", data.get("logLevel", "info")),
        source=source,
    )
