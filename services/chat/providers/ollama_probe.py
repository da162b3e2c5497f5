"""How ollama is probed: `/api/version` tells it is ollama, `/api/tags` what is pulled,
`/api/ps` what is loaded and how much of it sits in GPU memory (notes/ollama-api.md §3).

Used by the native adapter, and by the OpenAI-compatible adapter when the server behind a
`/v1` base URL turns out to be ollama.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any

import aiohttp

from clawgate.common.config import API_OLLAMA, ProviderSpec
from services.chat.providers.base import (
    UpstreamFailure,
    UpstreamHttpError,
    UpstreamWrongApi,
    bearer_headers,
)
from services.chat.providers.http import get_json
from services.chat.providers.probe import (
    SERVER_OLLAMA,
    LoadedModel,
    WorkerProbe,
    wrong_api_message,
)

# What a server without ollama's native routes answers for them (or a non-JSON page).
NOT_SERVED = frozenset({200, 404, 405})


def native_root(worker: str) -> str:
    """The server root; a `/v1` copied from an OpenAI-style baseUrl is tolerated."""
    return worker[: -len("/v1")] if worker.endswith("/v1") else worker


async def probe_native(
    session: aiohttp.ClientSession, provider: ProviderSpec, worker: str
) -> WorkerProbe:
    """An `api: ollama` worker; a server without ollama's native API is a config mistake."""
    try:
        version = await _get(session, provider, worker, "/api/version")
        tags, ps = await asyncio.gather(
            _get(session, provider, worker, "/api/tags"),
            _get(session, provider, worker, "/api/ps"),
        )
    except UpstreamHttpError as exc:
        if exc.status in NOT_SERVED:
            raise UpstreamWrongApi(worker, wrong_api_message(worker, API_OLLAMA)) from exc
        raise
    if not isinstance(version, dict) or not isinstance(version.get("version"), str):
        raise UpstreamWrongApi(worker, wrong_api_message(worker, API_OLLAMA))
    return WorkerProbe(SERVER_OLLAMA, version["version"], pulled_models(tags), loaded_models(ps))


async def ollama_version(
    session: aiohttp.ClientSession, provider: ProviderSpec, worker: str
) -> str | None:
    """ollama's version when the server behind `worker` is ollama; None otherwise."""
    try:
        reply = await _get(session, provider, worker, "/api/version")
    except UpstreamFailure:
        return None
    version = reply.get("version") if isinstance(reply, dict) else None
    return version if isinstance(version, str) else None


async def ollama_loaded(
    session: aiohttp.ClientSession, provider: ProviderSpec, worker: str
) -> list[LoadedModel] | None:
    """`/api/ps` of an ollama server; None when it does not answer."""
    try:
        return loaded_models(await _get(session, provider, worker, "/api/ps"))
    except UpstreamFailure:
        return None


async def _get(
    session: aiohttp.ClientSession, provider: ProviderSpec, worker: str, path: str
) -> Any:
    return await get_json(session, worker, native_root(worker) + path, bearer_headers(provider))


def pulled_models(tags: Any) -> dict[str, int]:
    """`/api/tags` → model name → modified time (Unix seconds)."""
    models: dict[str, int] = {}
    for entry in _entries(tags, "models"):
        name = entry.get("model") or entry.get("name")
        if isinstance(name, str):
            models[name] = unix_time(entry.get("modified_at"))
    return models


def loaded_models(ps: Any) -> list[LoadedModel]:
    """`/api/ps` → loaded models with their memory and GPU memory."""
    return [
        LoadedModel(
            name=str(entry.get("model") or entry.get("name")),
            size_bytes=float(entry.get("size") or 0),
            size_vram_bytes=float(entry.get("size_vram") or 0),
            context_length=int(entry.get("context_length") or 0),
            expires_at=str(entry.get("expires_at") or ""),
        )
        for entry in _entries(ps, "models")
    ]


def _entries(document: Any, key: str) -> list[dict[str, Any]]:
    items = document.get(key) if isinstance(document, dict) else None
    return [item for item in items or () if isinstance(item, dict)]


def unix_time(stamp: Any) -> int:
    """RFC 3339 (nanosecond fractions allowed) → Unix seconds; 0 when unreadable."""
    if not isinstance(stamp, str):
        return 0
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", stamp).replace("Z", "+00:00")
    try:
        return int(datetime.fromisoformat(trimmed).timestamp())
    except ValueError:
        return 0
