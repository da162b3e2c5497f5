"""What a worker is and what it has, as its adapter found out (one answer for health,
`/models` and chat errors).

Each adapter's `probe()` fills a `WorkerProbe`; this module says how to read one: which
configured models it lacks, and a one-line description that names the server truthfully
(ollama advice only for ollama).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from clawgate.common.config import API_OLLAMA
from services.chat.providers.base import public_url, with_default_tag

SERVER_OLLAMA = "ollama"
SERVER_LLAMA_CPP = "llama.cpp server (OpenAI-compatible)"
SERVER_OPENAI = "OpenAI-compatible server"


@dataclass(frozen=True)
class LoadedModel:
    """A model in a worker's memory."""

    name: str
    size_bytes: float = 0.0
    # None: the server does not say how much of it is on the GPU.
    size_vram_bytes: float | None = None
    context_length: int = 0
    expires_at: str = ""


@dataclass
class WorkerProbe:
    """One worker as probed: what server it is, what it serves, what it has loaded."""

    server: str
    version: str = ""  # "" when the server does not tell
    models: dict[str, int] = field(default_factory=dict)  # model id → created (Unix s)
    # None when the server cannot tell which models are in memory.
    loaded: list[LoadedModel] | None = None

    def serves(self, model_id: str) -> bool:
        return self.created(model_id) is not None

    def created(self, model_id: str) -> int | None:
        """When the worker has `model_id`: its created time (0 if unknown); else None."""
        wanted = with_default_tag(model_id).lower()
        for name, created in self.models.items():
            if with_default_tag(name).lower() == wanted:
                return created
        return None

    def missing(self, model_ids: Iterable[str]) -> list[str]:
        return [m for m in model_ids if not self.serves(m)]

    @property
    def vram_used_bytes(self) -> float:
        return sum(m.size_vram_bytes or 0.0 for m in self.loaded or ())

    def describe(self, missing: list[str]) -> str:
        """E.g. `ollama 0.12.3 reachable; loaded: qwen3:8b (5.1 GiB VRAM)`."""
        name = f"{self.server} {self.version}".strip()
        text = f"{name} reachable; loaded: {self._loaded_text()}"
        if missing:
            text += "; " + self.missing_advice(missing)
        return text

    def _loaded_text(self) -> str:
        if self.loaded is None:
            return "unknown (the server does not report it)"
        parts = []
        for model in self.loaded:
            if model.size_vram_bytes is None:
                parts.append(model.name)
            else:
                parts.append(f"{model.name} ({model.size_vram_bytes / 2**30:.1f} GiB VRAM)")
        return ", ".join(parts) or "none"

    def missing_advice(self, missing: list[str]) -> str:
        if self.server == SERVER_OLLAMA:
            return "models not pulled: " + "; ".join(f"ollama pull {m}" for m in missing)
        served = ", ".join(self.models) or "none"
        return (
            f"models not served: {', '.join(missing)} (the server serves: {served}); "
            "fix the model ids in the config or load them on the server"
        )


def wrong_api_message(worker: str, api: str) -> str:
    """A worker whose `api` in the config does not match what it serves."""
    url = public_url(worker)
    if api == API_OLLAMA:
        return (
            f"worker at {url} does not serve the ollama native API; use `api: openai-completions`"
        )
    return (
        f"worker at {url} does not serve the OpenAI-compatible API (no /models); check its "
        "baseUrl (ollama's ends in /v1) or use `api: ollama`"
    )
