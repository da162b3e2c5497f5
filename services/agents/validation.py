"""What a valid agent is: name rules, a configured model, config values in range.

Every failure is a 400 naming the offending field, in the same terms for REST and gRPC.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from clawgate.agents.v1 import agent_service_pb2 as pb
from clawgate.common.config import Config
from clawgate.common.errors import ApiError, invalid, quote
from services.agents.records import ID_PREFIX

NAME_MAX = 64
DESCRIPTION_MAX = 4096
SYSTEM_PROMPT_MAX = 65536
STOP_MAX_COUNT = 4
STOP_MAX_LENGTH = 256
AGENT_MODEL_PREFIX = "agent:"

# Starts with a letter or digit (so `.`/`..` never reach a URL path), then letters,
# digits, `_`, `-` or `.`. `\w` admits non-Latin letters: 客服助手 is a fine name.
_NAME = re.compile(r"[^\W_][\w.-]*")

# Every field of an agent that a client may set, as update-mask paths.
ConfigField = Literal["temperature", "max_tokens", "top_p", "presence_penalty", "frequency_penalty"]
CONFIG_FIELDS: tuple[ConfigField, ...] = (
    "temperature",
    "max_tokens",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
)
CONFIG_PATHS = (*(f"config.{f}" for f in CONFIG_FIELDS), "config.stop")
TopLevelField = Literal["name", "description", "model", "system_prompt", "shared"]
TOP_LEVEL_PATHS: tuple[TopLevelField, ...] = (
    "name",
    "description",
    "model",
    "system_prompt",
    "shared",
)
TOOLS_PATH = "tools"  # repeated: present when non-empty, like config.stop
ALL_PATHS = frozenset((*TOP_LEVEL_PATHS, *CONFIG_PATHS, TOOLS_PATH))

_RANGES: dict[ConfigField, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}


@dataclass(frozen=True)
class ModelCatalog:
    """The configured models an agent may use, with each one's output token limit."""

    max_tokens: dict[str, int]

    @classmethod
    def from_config(cls, config: Config) -> ModelCatalog:
        limits: dict[str, int] = {}
        for _, model in config.models():
            # Several providers may serve one model id; the most generous limit applies.
            limits[model.id] = max(limits.get(model.id, 0), model.max_tokens)
        return cls(limits)

    def describe(self) -> str:
        ids = sorted(self.max_tokens)
        shown = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
        return shown or "none"


def normalize_name(name: str) -> str:
    """One spelling per name: NFC, so visually identical names cannot both exist."""
    return unicodedata.normalize("NFC", name)


def check_name(name: str) -> None:
    if not name:
        raise invalid("name is required", "name", code="missing_required_parameter")
    if name.startswith(AGENT_MODEL_PREFIX):
        raise invalid(
            f"name must not start with {AGENT_MODEL_PREFIX!r}; that prefix is only used "
            "to pick an agent as a chat model",
            "name",
        )
    if len(name) > NAME_MAX:
        raise invalid(f"name must be at most {NAME_MAX} characters", "name")
    if not _NAME.fullmatch(name):
        raise invalid(
            "name must start with a letter or digit and contain only letters, digits, "
            "'_', '-' and '.'",
            "name",
        )
    if name.lower().startswith(ID_PREFIX):
        raise invalid(f"names starting with {ID_PREFIX!r} are reserved for agent ids", "name")


def validate(agent: pb.Agent, catalog: ModelCatalog, changed: Iterable[str] = ALL_PATHS) -> None:
    """Check the fields named in `changed` (update-mask paths) of a complete agent.

    Only changed fields are checked, so an agent whose model was later removed from the
    config can still be edited (e.g. pointed at another model).
    """
    paths = frozenset(changed)
    if "name" in paths:
        check_name(agent.name)
    if "model" in paths:
        _check_model(agent.model, catalog)
    if "description" in paths and len(agent.description) > DESCRIPTION_MAX:
        raise invalid(f"description must be at most {DESCRIPTION_MAX} characters", "description")
    if "system_prompt" in paths and len(agent.system_prompt) > SYSTEM_PROMPT_MAX:
        raise invalid(
            f"system_prompt must be at most {SYSTEM_PROMPT_MAX} characters", "system_prompt"
        )
    config = agent.config
    for name, (low, high) in _RANGES.items():
        if f"config.{name}" in paths and config.HasField(name):
            _check_range(getattr(config, name), low, high, f"config.{name}")
    if config.HasField("max_tokens") and paths & {"config.max_tokens", "model"}:
        _check_max_tokens(config.max_tokens, catalog.max_tokens.get(agent.model))
    if "config.stop" in paths:
        _check_stop(list(config.stop))


def _check_model(model: str, catalog: ModelCatalog) -> None:
    if not model:
        raise invalid(
            f"model is required; configured models: {catalog.describe()}",
            "model",
            code="missing_required_parameter",
        )
    if model not in catalog.max_tokens:
        raise ApiError(
            400,
            f"model {quote(model)} is not a configured model; "
            f"configured models: {catalog.describe()}",
            param="model",
            code="model_not_found",
        )


def _check_range(value: float, low: float, high: float, param: str) -> None:
    if not math.isfinite(value) or not low <= value <= high:
        raise invalid(f"{param} must be between {low:g} and {high:g}, got {value:g}", param)


def _check_max_tokens(value: int, limit: int | None) -> None:
    if value < 1:
        raise invalid(f"config.max_tokens must be at least 1, got {value}", "config.max_tokens")
    if limit is not None and value > limit:
        raise invalid(
            f"config.max_tokens must be at most {limit} (the model's maxTokens), got {value}",
            "config.max_tokens",
        )


def _check_stop(stop: list[str]) -> None:
    if len(stop) > STOP_MAX_COUNT:
        raise invalid(f"config.stop takes at most {STOP_MAX_COUNT} sequences", "config.stop")
    for sequence in stop:
        if not sequence or len(sequence) > STOP_MAX_LENGTH:
            raise invalid(
                f"each config.stop sequence must be 1 to {STOP_MAX_LENGTH} characters",
                "config.stop",
            )
