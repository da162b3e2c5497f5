"""Model names and the pulled-model catalogue, as ollama's types/model.ParseName sees them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

# modified_at of the first model in the list; later ones are an hour older each, so
# "newest first" ordering is the list order and stays the same from run to run.
_BASE_MODIFIED_AT = 1_751_328_000.0  # 2025-07-01T00:00:00Z
_GIB = 1024**3

_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# Sizes of the default tag of well-known models (parameter count), used when the name has
# no "8b"-style tag.
_KNOWN_PARAMS = {"llama3.2": 3.2, "llama3.1": 8.0, "qwen3": 8.2, "deepseek-r1": 8.2, "gemma3": 4.3}


@dataclass(frozen=True)
class ModelName:
    host: str
    namespace: str
    model: str
    tag: str

    @property
    def full(self) -> str:
        """registry.ollama.ai/library/gemma3:4b — the form ollama puts in capability errors."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def key(self) -> str:
        """Case-insensitive identity used to match a request to a pulled model."""
        return self.full.lower()


def parse_name(name: str) -> ModelName | None:
    """[host/][namespace/]model[:tag]; None when the name is not a valid model name."""
    if not name or name != name.strip():
        return None
    base, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    parts = base.split("/")
    if len(parts) > 3 or not all(_PART.match(p) for p in parts):
        return None
    if tag and not _TAG.match(tag):
        return None
    host = parts[-3] if len(parts) == 3 else DEFAULT_HOST
    namespace = parts[-2] if len(parts) >= 2 else DEFAULT_NAMESPACE
    return ModelName(host, namespace, parts[-1], tag or DEFAULT_TAG)


def with_default_tag(name: str) -> str:
    """`qwen3` -> `qwen3:latest`, the way ollama names models it lists or fails to find."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:{DEFAULT_TAG}"


def namespace_of(name: str) -> str:
    parsed = parse_name(name)
    return parsed.namespace if parsed else DEFAULT_NAMESPACE


def _param_billions(name: ModelName) -> float:
    match = re.search(r"(\d+(?:\.\d+)?)b\b", name.tag.lower())
    if match:
        return float(match.group(1))
    return _KNOWN_PARAMS.get(name.model.lower(), 7.0)


@dataclass
class ModelSpec:
    """One pulled model. Only `name` is needed; the rest is derived plausibly from it."""

    name: str
    size: int
    size_vram: int
    family: str
    parameter_size: str
    quantization_level: str
    modified_at: float
    capabilities: list[str] | None = None  # None: derived (thinking by name prefix)

    @property
    def parsed(self) -> ModelName:
        parsed = parse_name(self.name)
        assert parsed is not None  # validated on creation
        return parsed

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    def effective_capabilities(self, thinking_prefixes: list[str]) -> list[str]:
        if self.capabilities is not None:
            return list(self.capabilities)
        caps = ["completion"]
        if not self.parsed.model.lower().startswith("gemma"):  # gemma3 has no tool template
            caps.append("tools")
        if any(self.parsed.model.lower().startswith(p.lower()) for p in thinking_prefixes):
            caps.append("thinking")
        return caps

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }

    def to_json(self, thinking_prefixes: list[str]) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "size_vram": self.size_vram,
            "family": self.family,
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
            "modified_at": self.modified_at,
            "capabilities": self.effective_capabilities(thinking_prefixes),
            "digest": self.digest,
        }

    @classmethod
    def from_name(cls, name: str, index: int = 0) -> ModelSpec:
        parsed = parse_name(name)
        if parsed is None:
            raise ValueError(f"invalid model name: {name!r}")
        billions = _param_billions(parsed)
        size = int(billions * 1e9 * 0.6)  # Q4_K_M is ~4.8 bits per weight
        family_match = re.match(r"[a-z]+\d*", parsed.model.lower())
        return cls(
            name=with_default_tag(name),
            size=size,
            size_vram=size,
            family=family_match.group(0) if family_match else parsed.model.lower(),
            parameter_size=f"{billions:g}B",
            quantization_level="Q4_K_M",
            modified_at=_BASE_MODIFIED_AT - 3600.0 * index,
        )

    @classmethod
    def from_json(cls, value: object, index: int) -> ModelSpec:
        """A model entry from settings: a name string or an object with `name` and overrides."""
        if isinstance(value, str):
            return cls.from_name(value, index)
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise ValueError("each model must be a name or an object with a string 'name'")
        spec = cls.from_name(value["name"], index)
        unknown = set(value) - {*spec.to_json([]).keys()}
        if unknown:
            raise ValueError(f"unknown model fields: {sorted(unknown)}")
        for key in ("size", "size_vram"):
            if key in value:
                if not isinstance(value[key], int) or isinstance(value[key], bool):
                    raise ValueError(f"model {key} must be an integer")
                setattr(spec, key, value[key])
        if "size" in value and "size_vram" not in value:
            spec.size_vram = spec.size
        for key in ("family", "parameter_size", "quantization_level"):
            if key in value:
                if not isinstance(value[key], str):
                    raise ValueError(f"model {key} must be a string")
                setattr(spec, key, value[key])
        if "modified_at" in value:
            if not isinstance(value["modified_at"], int | float):
                raise ValueError("model modified_at must be unix seconds")
            spec.modified_at = float(value["modified_at"])
        if value.get("capabilities") is not None:
            caps = value["capabilities"]
            if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
                raise ValueError("model capabilities must be a list of strings")
            spec.capabilities = list(caps)
        return spec

    def oom_message(self) -> str:
        """ollama's refusal to load a model that does not fit (llm/server.go)."""
        required = self.size * 1.15 / _GIB + 0.5
        available = min(8.0, round(required / 2, 1))
        return (
            f"model requires more system memory ({required:.1f} GiB) "
            f"than is available ({available:.1f} GiB)"
        )


def find_model(models: list[ModelSpec], requested: str) -> ModelSpec | None:
    parsed = parse_name(requested)
    if parsed is None:
        return None
    return next((m for m in models if m.parsed.key == parsed.key), None)
