"""Configuration: one file (JSON or YAML) plus environment variables that override it.

The file is found at $CLAWGATE_CONFIG, else ./clawgate.yaml or ./clawgate.json, else the
built-in defaults (one local ollama serving qwen3:32b, as in the product description).
Providers use the product's own shape (MISSION.md R6). String values may reference the
environment as `${NAME}`, so secrets such as provider keys stay out of the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clawgate.common.extensions import ExtensionConfigError, ExtensionSettings, parse_extensions
from clawgate.common.services import SERVICES
from clawgate.common.services import ServiceAddrs as ServiceAddrs  # config.services' type
from clawgate.common.tokens import TokenFormatError, TokenSpec, check_name, parse_scopes

# One chat process unless asked for more (README "Several chat processes"); "auto" is one
# per CPU, at most MAX_CHAT_PROCESSES.
DEFAULT_CHAT_PROCESSES = 1
MAX_CHAT_PROCESSES = 8
AUTO = "auto"
CHAT_PROCESSES_ENV = "CLAWGATE_CHAT_PROCESSES"
CHAT_PROCESS_INDEX_ENV = "CLAWGATE_CHAT_PROCESS_INDEX"

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
    # Time to first token for this model (None: the chat settings' limit, scaled by prompt).
    first_token_timeout_s: float | None = None


@dataclass(frozen=True)
class ProviderSpec:
    id: str
    api: str
    # Every worker serving this provider's models; the first is the config's `baseUrl`.
    workers: tuple[str, ...]
    api_key: str = field(default="", repr=False)
    models: tuple[ModelSpec, ...] = ()
    # Requests one worker runs at once (ollama's OLLAMA_NUM_PARALLEL); None: chat default.
    max_concurrency: int | None = None

    @property
    def base_url(self) -> str:
        return self.workers[0]


@dataclass(frozen=True)
class EdgeLimits:
    """What Envoy allows one client at the edge (README "Limits")."""

    # Time to send the request headers once the first byte arrived (slowloris).
    request_headers_timeout_s: float = 10.0
    # Time to send a whole request, headers and body.
    request_receive_timeout_s: float = 60.0
    # A connection with no request in flight is closed after this.
    idle_timeout_s: float = 60.0
    # A request with no bytes in either direction is reset after this; it must exceed the
    # first-token limit, during which a streaming answer sends nothing.
    stream_idle_timeout_s: float = 600.0
    # Open client connections, all clients together.
    max_connections: int = 10000
    # Request headers, all together, and how many (more: 431).
    max_request_headers_kb: int = 32
    max_headers_count: int = 100
    # Requests in flight on one HTTP/2 connection.
    max_concurrent_streams: int = 1000


@dataclass(frozen=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 8000
    admin_port: int = 9901
    limits: EdgeLimits = field(default_factory=EdgeLimits)


@dataclass(frozen=True)
class CacheSettings:
    enabled: bool = True
    ttl_seconds: int = 3600
    namespace: str = "clawgate"
    # Separate cache entries per gateway token, so one token's owner never sees another's;
    # None ("auto") isolates as soon as more than one token is configured.
    isolate_tokens: bool | None = None
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
    # The first-token limit grows by this much per 1,000 prompt tokens (prompt evaluation
    # on a CPU or a busy GPU takes time proportional to the prompt).
    first_token_per_1k_prompt_s: float = 20.0
    # Longest silence between two chunks once the answer has started.
    idle_timeout_s: float = 60.0
    # Overload protection, per worker: requests run at once (OLLAMA_NUM_PARALLEL), how many
    # may wait for a slot, and for how long; beyond that a 429 with Retry-After at once.
    # The queue is as deep as ollama's own (OLLAMA_MAX_QUEUE, 512): a burst of clients waits
    # for its turn instead of being refused (nothing that works at c=1 fails at c=64).
    worker_concurrency: int = 4
    worker_queue_length: int = 512
    worker_queue_wait_s: float = 10.0  # under keepalive_s: a queue timeout stays a 429
    # Batch lines a worker runs at once (at most; only in slots no interactive request wants).
    batch_concurrency: int = 1
    # Passive outlier ejection: this many failures in a row take a worker out of rotation
    # for eject_base_s, doubling on each further ejection up to eject_max_s.
    eject_after_failures: int = 3
    eject_base_s: float = 5.0
    eject_max_s: float = 120.0
    # Bounds on what one answer may make the gateway hold: the aggregated text (also the
    # cache copy) is at most max_tokens x answer_bytes_per_token and max_answer_bytes;
    # one line/frame from a worker is at most max_line_bytes.
    answer_bytes_per_token: int = 64
    max_answer_bytes: int = 8 * 1024 * 1024
    max_line_bytes: int = 1024 * 1024
    # Streams: an SSE comment after this long without output (queue, first token); the
    # default is above workerQueueWaitSeconds, so a queue timeout still gets its 429.
    keepalive_s: float = 15.0
    # Chat processes the local launcher runs (`chat.processes`, `onboard --workers`), each
    # on its own port behind Envoy; this process's place among them (set by the launcher).
    # Per-worker slots and queue places are split among them (services/chat/workers.py).
    processes: int = DEFAULT_CHAT_PROCESSES
    process_index: int = 0


@dataclass(frozen=True)
class Config:
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    services: ServiceAddrs = field(default_factory=ServiceAddrs)  # where to dial each service
    listen: ServiceAddrs = field(default_factory=ServiceAddrs)  # where each one listens
    redis_url: str = "redis://127.0.0.1:6379/0"
    cache: CacheSettings = field(default_factory=CacheSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    providers: tuple[ProviderSpec, ...] = ()
    auth: AuthSettings = field(default_factory=lambda: AuthSettings())
    state_dir: str = ".clawgate"
    log_level: str = "info"
    source: str = "defaults"
    extensions: ExtensionSettings = field(default_factory=ExtensionSettings)  # plugins, tools

    def models(self) -> list[tuple[ProviderSpec, ModelSpec]]:
        """Every configured model with its provider, in config order."""
        return [(p, m) for p in self.providers for m in p.models]

    def find_model(self, model_id: str) -> list[tuple[ProviderSpec, ModelSpec]]:
        """The providers serving `model_id` (several providers may serve one model)."""
        return [(p, m) for p, m in self.models() if m.id == model_id]

    def worker_urls(self) -> list[tuple[ProviderSpec, str]]:
        return [(p, w) for p in self.providers for w in p.workers]


# -- auth: named, scoped tokens; rate limits per token (clawgate/common/tokens.py) -------
@dataclass(frozen=True)
class RateLimits:
    """Per token; 0 means no limit. Off by default: a self-hosted gateway serves its own
    clients, and a limit nobody set would turn a burst (or a benchmark) into 429s; the
    operator sets `auth.rateLimits` (a `default` and per token name) when tokens are shared."""

    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    concurrent_streams: int = 0


@dataclass(frozen=True)
class AuthSettings:
    tokens: tuple[TokenSpec, ...] = ()  # from config; the token file and env add more
    # `default` and one entry per token name.
    rate_limits: Mapping[str, RateLimits] = field(default_factory=dict)
    failed_auth_attempts: int = 20  # per client address and window; 0 turns it off
    failed_auth_window_s: float = 60.0

    def limits_for(self, token_name: str) -> RateLimits:
        return self.rate_limits.get(token_name) or self.rate_limits.get("default") or RateLimits()


def _count(raw: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = _num(raw, key, default, where)
    if value < 0:
        raise ConfigError(f"{where}.{key} must be 0 or more, got {value:g}")
    return value


def _parse_limits(raw: Any, where: str) -> RateLimits:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be an object")
    d = RateLimits()
    return RateLimits(
        requests_per_minute=int(_count(raw, "requestsPerMinute", d.requests_per_minute, where)),
        tokens_per_minute=int(_count(raw, "tokensPerMinute", d.tokens_per_minute, where)),
        concurrent_streams=int(_count(raw, "concurrentStreams", d.concurrent_streams, where)),
    )


def _parse_token(raw: Any, where: str) -> TokenSpec:
    if not isinstance(raw, dict) or not isinstance(raw.get("token"), str) or not raw["token"]:
        raise ConfigError(f'{where} needs `name`, `token` (e.g. "${{MY_TOKEN}}") and `scopes`')
    scopes = raw.get("scopes", [])
    if not isinstance(scopes, list) or not all(isinstance(x, str) for x in scopes):
        raise ConfigError(f"{where}.scopes must be a list such as [chat, agents:read]")
    try:
        name = check_name(str(raw.get("name", "")), where)
        return TokenSpec(name, raw["token"], parse_scopes(scopes, where))
    except TokenFormatError as e:
        raise ConfigError(str(e)) from None


def parse_auth(raw: Any) -> AuthSettings:
    if not isinstance(raw, dict):
        raise ConfigError("auth must be an object")
    tokens_raw = raw.get("tokens", [])
    if not isinstance(tokens_raw, list):
        raise ConfigError("auth.tokens must be a list of {name, token, scopes}")
    tokens = tuple(_parse_token(t, f"auth.tokens[{i}]") for i, t in enumerate(tokens_raw))
    limits_raw = raw.get("rateLimits", {})
    if not isinstance(limits_raw, dict):
        raise ConfigError("auth.rateLimits must be an object keyed by `default` or token name")
    failed = raw.get("failedAuth", {})
    if not isinstance(failed, dict):
        raise ConfigError("auth.failedAuth must be an object {attempts, windowSeconds}")
    return AuthSettings(
        tokens=tokens,
        rate_limits={k: _parse_limits(v, f"auth.rateLimits.{k}") for k, v in limits_raw.items()},
        failed_auth_attempts=int(_count(failed, "attempts", 20, "auth.failedAuth")),
        failed_auth_window_s=_count(failed, "windowSeconds", 60.0, "auth.failedAuth") or 60.0,
    )


def _isolate_tokens(value: Any) -> bool | None:
    """`auto` (default: isolate when more than one token exists), true or false."""
    if value is None or value == "auto":
        return None
    return _bool(value, "cache.isolateTokens")


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


# --- typed values: every error names the setting (env variable or file key) -------------

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _bool(value: Any, name: str) -> bool:
    """true/false/yes/no/on/off/1/0, as YAML values or (quoted) strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{name}: expected true or false, got {_shown(value)}")


def _number(value: Any, name: str, what: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(f"{name}: expected {what}, got {_shown(value)}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ConfigError(f"{name}: expected {what}, got {_shown(value)}")
    return float(value)


def _float(value: Any, name: str, low: float = 0.0, *, positive: bool = True) -> float:
    what = "a number of seconds above 0" if positive else f"a number >= {low:g}"
    number = _number(value, name, what)
    if number < low or (positive and number <= 0) or number == float("inf"):
        raise ConfigError(f"{name}: expected {what}, got {_shown(value)}")
    return number


def _int(value: Any, name: str, low: int, high: int | None = None, what: str = "") -> int:
    what = what or (f"an integer {low}-{high}" if high is not None else f"an integer >= {low}")
    number = _number(value, name, what)
    if not number.is_integer() or number < low or (high is not None and number > high):
        raise ConfigError(f"{name}: expected {what}, got {_shown(value)}")
    return int(number)


def _port(value: Any, name: str) -> int:
    return _int(value, name, 1, 65535, "a port number 1-65535")


def chat_processes(value: Any, name: str = "chat.processes") -> int:
    """A chat process count: an integer 1-MAX_CHAT_PROCESSES, or "auto" (one per CPU,
    capped at MAX_CHAT_PROCESSES)."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return max(1, min(os.cpu_count() or 1, MAX_CHAT_PROCESSES))
    return _int(
        value, name, 1, MAX_CHAT_PROCESSES, f'an integer 1-{MAX_CHAT_PROCESSES} or "{AUTO}"'
    )


def _section(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected an object, got {_shown(value)}")
    return value


def _pick(
    env: Mapping[str, str],
    env_name: str | None,
    section: Mapping[str, Any],
    key: str,
    where: str,
    default: Any,
) -> tuple[Any, str]:
    """The raw value (environment first, then file, then default) and its name."""
    if env_name is not None and env_name in env:
        return env[env_name], env_name
    return section.get(key, default), f"{where}.{key}"


def _num(raw: Mapping[str, Any], key: str, default: float, where: str) -> float:
    return _number(raw.get(key, default), f"{where}.{key}", "a number")


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
        reasoning=_bool(raw.get("reasoning", False), f"{where}.reasoning"),
        input=tuple(inputs),
        context_window=context_window,
        max_tokens=max_tokens,
        cost=cost,
        first_token_timeout_s=(
            _num(raw, "firstTokenTimeoutSeconds", 0, where)
            if raw.get("firstTokenTimeoutSeconds") is not None
            else None
        ),
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
        max_concurrency=(
            max(1, int(_num(raw, "maxConcurrency", 1, where)))
            if raw.get("maxConcurrency") is not None
            else None
        ),
    )


def parse_providers(raw: Any) -> tuple[ProviderSpec, ...]:
    if not isinstance(raw, dict):
        raise ConfigError("providers must be an object keyed by provider id")
    return tuple(_parse_provider(pid, p) for pid, p in raw.items())


def _providers_from_env(value: str) -> Any:
    """$CLAWGATE_PROVIDERS holds the providers JSON, or the path of a file with it."""
    text = value.strip()
    if not text.startswith("{"):
        try:
            text = Path(text).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"CLAWGATE_PROVIDERS: cannot read {text!r}: {e.strerror}") from e
    try:
        return json.loads(text)
    except ValueError as e:
        raise ConfigError(f"CLAWGATE_PROVIDERS is not valid JSON: {e}") from e


# chat config key → ChatSettings field, for the limits that need no special parsing.
_CHAT_LIMIT_KEYS = {
    "firstTokenSecondsPer1kPromptTokens": "first_token_per_1k_prompt_s",
    "idleTimeoutSeconds": "idle_timeout_s",
    "workerConcurrency": "worker_concurrency",
    "workerQueueLength": "worker_queue_length",
    "workerQueueWaitSeconds": "worker_queue_wait_s",
    "batchConcurrencyPerWorker": "batch_concurrency",
    "ejectAfterFailures": "eject_after_failures",
    "ejectBaseSeconds": "eject_base_s",
    "ejectMaxSeconds": "eject_max_s",
    "answerBytesPerToken": "answer_bytes_per_token",
    "maxAnswerBytes": "max_answer_bytes",
    "maxLineBytes": "max_line_bytes",
    "keepAliveSeconds": "keepalive_s",
}


def _chat_limits(raw: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, name in _CHAT_LIMIT_KEYS.items():
        if raw.get(key) is None:
            continue
        kind = type(getattr(ChatSettings, name))
        value = _num(raw, key, 0, "chat")
        if value < 0:
            raise ConfigError(f"chat.{key} must not be negative")
        values[name] = kind(value)
    return values


def _chat_processes(env: Mapping[str, str], ch: Mapping[str, Any]) -> dict[str, int]:
    count = chat_processes(*_pick(env, CHAT_PROCESSES_ENV, ch, "processes", "chat",
                                  DEFAULT_CHAT_PROCESSES))  # fmt: skip
    index = _int(env.get(CHAT_PROCESS_INDEX_ENV, 0), CHAT_PROCESS_INDEX_ENV, 0, count - 1)
    return {"processes": count, "process_index": index}


def _edge_limits(gw: Mapping[str, Any]) -> EdgeLimits:
    d = EdgeLimits()

    def seconds(key: str, default: float) -> float:
        return _float(gw.get(key, default), f"gateway.{key}")

    def count(key: str, default: int, low: int = 1, high: int | None = None) -> int:
        return _int(gw.get(key, default), f"gateway.{key}", low, high)

    return EdgeLimits(
        request_headers_timeout_s=seconds(
            "requestHeadersTimeoutSeconds", d.request_headers_timeout_s
        ),
        request_receive_timeout_s=seconds(
            "requestReceiveTimeoutSeconds", d.request_receive_timeout_s
        ),
        idle_timeout_s=seconds("idleTimeoutSeconds", d.idle_timeout_s),
        stream_idle_timeout_s=seconds("streamIdleTimeoutSeconds", d.stream_idle_timeout_s),
        max_connections=count("maxConnections", d.max_connections),
        # Envoy accepts 1-8192 KiB; services accept what Envoy passes (common/server.py).
        max_request_headers_kb=count("maxRequestHeadersKb", d.max_request_headers_kb, 1, 60),
        max_headers_count=count("maxHeadersCount", d.max_headers_count),
        max_concurrent_streams=count("maxConcurrentStreams", d.max_concurrent_streams),
    )


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

    gw = _section(data, "gateway")
    gateway = GatewaySettings(
        host=str(env.get("CLAWGATE_HOST", gw.get("host", "127.0.0.1"))),
        port=_port(*_pick(env, "CLAWGATE_PORT", gw, "port", "gateway", 8000)),
        admin_port=_port(*_pick(env, "CLAWGATE_ADMIN_PORT", gw, "adminPort", "gateway", 9901)),
        limits=_edge_limits(gw),
    )
    sv = _section(data, "services")
    services = ServiceAddrs.from_env(env, {name: str(addr) for name, addr in sv.items()})
    listen = ServiceAddrs({s.name: env.get(s.listen_env, services[s.name]) for s in SERVICES})
    cr = _section(data, "cache")
    cache = CacheSettings(
        enabled=_bool(*_pick(env, "CLAWGATE_CACHE_ENABLED", cr, "enabled", "cache", True)),
        ttl_seconds=_int(*_pick(env, "CLAWGATE_CACHE_TTL", cr, "ttlSeconds", "cache", 3600), 1),
        namespace=str(env.get("CLAWGATE_CACHE_NAMESPACE", cr.get("namespace", "clawgate"))),
        isolate_tokens=_isolate_tokens(cr.get("isolateTokens")),
        op_timeout_ms=_int(*_pick(env, None, cr, "opTimeoutMs", "cache", 50), 1),
        single_flight_wait_s=_float(
            *_pick(env, None, cr, "singleFlightWaitSeconds", "cache", 30.0), positive=False
        ),
    )
    ch = _section(data, "chat")
    chat = ChatSettings(
        request_timeout_s=_float(
            *_pick(env, "CLAWGATE_REQUEST_TIMEOUT", ch, "requestTimeoutSeconds", "chat", 300.0)
        ),
        first_token_timeout_s=_float(
            *_pick(
                env, "CLAWGATE_FIRST_TOKEN_TIMEOUT", ch, "firstTokenTimeoutSeconds", "chat", 120.0
            )
        ),
        max_retries=_int(*_pick(env, None, ch, "maxRetries", "chat", 2), 0),
        retry_backoff_s=_float(
            *_pick(env, None, ch, "retryBackoffSeconds", "chat", 0.5), positive=False
        ),
        connect_timeout_s=_float(*_pick(env, None, ch, "connectTimeoutSeconds", "chat", 5.0)),
        **_chat_limits(ch),
        **_chat_processes(env, ch),
    )
    if gateway.limits.stream_idle_timeout_s <= chat.first_token_timeout_s:
        raise ConfigError(
            f"gateway.streamIdleTimeoutSeconds ({gateway.limits.stream_idle_timeout_s:g}) must "
            f"exceed chat.firstTokenTimeoutSeconds ({chat.first_token_timeout_s:g}), or Envoy "
            "cuts streams that wait for their first token"
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
            dataclasses.replace(first, workers=urls),
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
        auth=parse_auth(data.get("auth") or {}),
        state_dir=env.get("CLAWGATE_STATE_DIR", data.get("stateDir", ".clawgate")),
        log_level=env.get("CLAWGATE_LOG_LEVEL", data.get("logLevel", "info")),
        source=source,
        extensions=_extensions(data),
    )


def load_config_or_exit(path: str | None = None) -> Config:
    """load_config for a process entry point: a bad setting ends the process with one
    line naming it (exit code 2), not a traceback."""
    try:
        return load_config(path)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def _extensions(data: Mapping[str, Any]) -> ExtensionSettings:
    try:
        return parse_extensions(data)
    except ExtensionConfigError as e:
        raise ConfigError(str(e)) from e
