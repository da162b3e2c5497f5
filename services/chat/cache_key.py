"""Prompt-cache keys: which requests may share an answer, and the Cache-Control switches.

Two requests share a key only when the upstream model would see the same thing. Equal JSON
(other key order, whitespace, 0.7 vs 0.70, `stop: "x"` vs `["x"]`, null vs absent) maps to
one key; anything else — even a difference the model might ignore — gets its own key,
because serving a wrong answer is worse than calling the model again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Bump when the canonical form changes, so old entries are never read with new rules.
KEY_VERSION = "v1"

# Transport and bookkeeping fields: they change how the answer is delivered or billed,
# never its text. (`n` > 1 is refused by the chat service, so n is always 1.)
IGNORED_FIELDS = frozenset({"stream", "stream_options", "user", "n", "keep_alive"})
# Sampling parameters typed `number`: 1 and 1.0 are the same temperature.
FLOAT_FIELDS = frozenset({"temperature", "top_p", "frequency_penalty", "presence_penalty"})
# Integer parameters: 100.0 (some JSON encoders) is the integer 100.
INT_FIELDS = frozenset({"max_tokens", "max_completion_tokens", "seed", "top_logprobs"})

_HEX = frozenset("0123456789abcdef")
DIGEST_LEN = 64  # SHA-256, hex


def canonical_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an OpenAI chat request that decide the answer, in one canonical form."""
    out: dict[str, Any] = {}
    for name, value in request.items():
        if name in IGNORED_FIELDS or value is None:
            continue
        if name in FLOAT_FIELDS:
            value = _as_float(value)
        elif name in INT_FIELDS:
            value = _as_int(value)
        elif name == "stop" and isinstance(value, str):
            value = [value]
        elif name == "messages" and isinstance(value, list):
            value = [_canonical_message(m) for m in value]
        out[name] = value
    return out


def request_digest(request: Mapping[str, Any], token_id: str | None = None) -> str:
    """SHA-256 (hex) of the canonical request, plus the token's id when entries are isolated."""
    material = {"key": KEY_VERSION, "request": canonical_request(request), "token": token_id}
    # ASCII escapes keep the bytes stable for any input (even lone surrogates).
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def entry_prefix(namespace: str, model: str | None = None) -> str:
    """Prefix of this deployment's entries (of one model, when given)."""
    base = f"{namespace}:cache:{KEY_VERSION}:"
    return base if model is None else f"{base}{model}:"


def entry_key(namespace: str, model: str, digest: str) -> str:
    """`{namespace}:cache:v1:{model}:{sha256}` — the model is readable so one can be purged."""
    return f"{entry_prefix(namespace, model)}{digest}"


def is_entry_key(key: str, prefix: str, *, exact_model: bool) -> bool:
    """Whether `key` (found under `prefix`) is an entry, not a lock or another model's key.

    With `exact_model`, the prefix already names the model, so only the digest may follow
    (model "a" must not purge model "a:b"); otherwise any model is accepted.
    """
    if not key.startswith(prefix):
        return False
    rest = key[len(prefix) :]
    if exact_model:
        return _is_digest(rest)
    model, sep, digest = rest.rpartition(":")
    return bool(model) and bool(sep) and _is_digest(digest)


def glob_escape(text: str) -> str:
    """`text` as a literal inside a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True)
class CacheControl:
    """What the client asked of the cache (`Cache-Control` request header or metadata)."""

    no_cache: bool = False  # do not answer from the cache; store the fresh answer
    no_store: bool = False  # do not store this answer


def parse_cache_control(values: str | Iterable[str] | None) -> CacheControl:
    """Read `no-cache`, `no-store` and `max-age=0` from one or more header values."""
    if values is None:
        return CacheControl()
    if isinstance(values, str):
        values = [values]
    no_cache = no_store = False
    for value in values:
        for directive in value.split(","):
            name, _, arg = directive.strip().partition("=")
            name = name.strip().lower()
            if name == "no-cache":
                no_cache = True
            elif name == "no-store":
                no_store = True
            elif name == "max-age" and arg.strip().strip('"') == "0":
                no_cache = True  # HTTP: max-age=0 means "do not accept a stored answer"
    return CacheControl(no_cache=no_cache, no_store=no_store)


def _canonical_message(message: Any) -> Any:
    if not isinstance(message, Mapping):
        return message
    return {k: v for k, v in message.items() if v is not None}


def _as_float(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) + 0.0  # + 0.0 turns -0.0 into 0.0
    return value


def _as_int(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _is_digest(text: str) -> bool:
    return len(text) == DIGEST_LEN and set(text) <= _HEX
