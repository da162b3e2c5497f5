"""The behaviour switches of the stand-in, settable from the CLI and at runtime.

Gateway tests drive these through PATCH /_standin/settings, so every field has a JSON form
and a validator that rejects wrong types with a readable message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from .misbehave import GARBAGE_KINDS, GarbageKind
from .models import ModelSpec

# down/busy/oom/cut: ollama's own failures; flood/stall/garbage: misbehaviour (misbehave.py).
FailMode = Literal["down", "busy", "oom", "cut", "flood", "stall", "garbage"]
FAIL_MODES: tuple[FailMode, ...] = ("down", "busy", "oom", "cut", "flood", "stall", "garbage")
DEFAULT_MODELS = ("qwen3:8b", "llama3.2:latest")


class SettingsError(ValueError):
    """A PATCH that names an unknown field or gives a value of the wrong type."""


def default_models() -> list[ModelSpec]:
    return [ModelSpec.from_name(name, i) for i, name in enumerate(DEFAULT_MODELS)]


@dataclass
class Settings:
    # Pacing: each generated chunk waits token_delay_ms; the first also waits
    # first_token_delay_ms (prompt evaluation), and load_delay_ms is added when the model
    # is not loaded yet (cold start: no bytes, not even headers, meanwhile).
    token_delay_ms: float = 5.0
    first_token_delay_ms: float = 0.0
    load_delay_ms: float = 0.0
    models: list[ModelSpec] = field(default_factory=default_models)
    # Loaded at startup/PATCH and kept loaded (as with OLLAMA_KEEP_ALIVE=-1).
    preloaded: list[str] = field(default_factory=list)
    thinking_prefixes: list[str] = field(default_factory=lambda: ["qwen3", "deepseek-r1"])
    fail: FailMode | None = None
    fail_times: int | None = None  # None: every chat request; N: the next N, then healthy
    cut_after: int = 3  # generation chunks sent before a "cut" or a "stall"
    garbage_kind: GarbageKind = "json"  # what fail="garbage" sends (see misbehave.py)
    legacy_stream: bool = False  # v0.5.2-v0.32.5 /v1 chunk format
    api_error_only: bool = False  # pre-v0.18: handler errors typed api_error
    old_not_found_message: bool = False  # <=v0.11: model "x" not found, try pulling it first
    think_tags_in_content: bool = False  # old servers: <think>...</think> inside content
    num_parallel: int = 1  # OLLAMA_NUM_PARALLEL: concurrent generations per model
    keep_alive_s: float = 300.0  # OLLAMA_KEEP_ALIVE
    default_num_ctx: int = 4096
    version: str = "0.33.0"
    request_log_limit: int = 1000

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["models"] = [m.to_json(self.thinking_prefixes) for m in self.models]
        data["preloaded"] = list(self.preloaded)
        data["thinking_prefixes"] = list(self.thinking_prefixes)
        return data

    def copy(self) -> Settings:
        return dataclasses.replace(
            self,
            models=[dataclasses.replace(m) for m in self.models],
            preloaded=list(self.preloaded),
            thinking_prefixes=list(self.thinking_prefixes),
        )

    def patched(self, changes: Mapping[str, Any]) -> Settings:
        """A copy with `changes` applied; raises SettingsError and leaves self untouched."""
        updated = self.copy()
        for name, raw in changes.items():
            parse = _PARSERS.get(name)
            if parse is None:
                raise SettingsError(f"unknown setting {name!r}; known: {sorted(_PARSERS)}")
            try:
                setattr(updated, name, parse(raw))
            except (TypeError, ValueError) as exc:
                raise SettingsError(f"{name}: {exc}") from exc
        return updated

    def take_fail(self) -> FailMode | None:
        """The failure to apply to this chat request, counting down fail_times."""
        if self.fail is None:
            return None
        if self.fail_times is None:
            return self.fail
        if self.fail_times <= 0:
            self.fail, self.fail_times = None, None
            return None
        mode = self.fail
        self.fail_times -= 1
        if self.fail_times == 0:  # exhausted: show the healthy state in GET /settings
            self.fail, self.fail_times = None, None
        return mode


def _number(minimum: float) -> Callable[[object], float]:
    def parse(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("must be a number")
        if value < minimum:
            raise ValueError(f"must be >= {minimum:g}")
        return float(value)

    return parse


def _integer(minimum: int, *, nullable: bool = False) -> Callable[[object], int | None]:
    def parse(value: object) -> int | None:
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("must be an integer" + (" or null" if nullable else ""))
        if value < minimum:
            raise ValueError(f"must be >= {minimum}")
        return value

    return parse


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError("must be true or false")
    return value


def _string(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("must be a non-empty string")
    return value


def _strings(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("must be a list of strings")
    return list(cast(list[str], value))


def _fail(value: object) -> FailMode | None:
    if value is None:
        return None
    if value not in FAIL_MODES:
        raise ValueError(f"must be null or one of {list(FAIL_MODES)}")
    return value  # type: ignore[return-value]  # narrowed by the membership test


def _garbage_kind(value: object) -> GarbageKind:
    if value not in GARBAGE_KINDS:
        raise ValueError(f"must be one of {list(GARBAGE_KINDS)}")
    return value  # type: ignore[return-value]  # narrowed by the membership test


def _models(value: object) -> list[ModelSpec]:
    if not isinstance(value, list):
        raise TypeError("must be a list of model names or objects")
    return [ModelSpec.from_json(item, i) for i, item in enumerate(value)]


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "token_delay_ms": _number(0),
    "first_token_delay_ms": _number(0),
    "load_delay_ms": _number(0),
    "models": _models,
    "preloaded": _strings,
    "thinking_prefixes": _strings,
    "fail": _fail,
    "fail_times": _integer(0, nullable=True),
    "cut_after": _integer(0),
    "garbage_kind": _garbage_kind,
    "legacy_stream": _boolean,
    "api_error_only": _boolean,
    "old_not_found_message": _boolean,
    "think_tags_in_content": _boolean,
    "num_parallel": _integer(1),
    "keep_alive_s": _number(-1e18),
    "default_num_ctx": _integer(1),
    "version": _string,
    "request_log_limit": _integer(1),
}
