"""Upstream adapters, one per provider `api` kind."""

from __future__ import annotations

from clawgate.common.config import API_OLLAMA, API_OPENAI
from services.chat.providers.base import ProviderAdapter
from services.chat.providers.ollama_native import OllamaNativeAdapter
from services.chat.providers.openai_compat import OpenAICompatAdapter

ADAPTERS: dict[str, ProviderAdapter] = {
    API_OPENAI: OpenAICompatAdapter(),
    API_OLLAMA: OllamaNativeAdapter(),
}


def adapter_for(api: str) -> ProviderAdapter:
    return ADAPTERS[api]
