"""How an OpenAI-compatible worker is probed: `GET /models` with the provider's key, and
what the server is. ollama (found by its `/api/version`) also reports `/api/ps`;
llama.cpp's llama-server (models `owned_by: llamacpp`) serves the models it lists, and
its `/props` names its build; any other server is reported without guesses.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from clawgate.common.config import API_OPENAI, ProviderSpec
from services.chat.providers.base import (
    UpstreamFailure,
    UpstreamHttpError,
    UpstreamWrongApi,
    bearer_headers,
)
from services.chat.providers.http import get_json
from services.chat.providers.ollama_probe import (
    NOT_SERVED,
    native_root,
    ollama_loaded,
    ollama_version,
)
from services.chat.providers.probe import (
    SERVER_LLAMA_CPP,
    SERVER_OLLAMA,
    SERVER_OPENAI,
    LoadedModel,
    WorkerProbe,
    wrong_api_message,
)

LLAMA_CPP_OWNER = "llamacpp"


async def probe_openai(
    session: aiohttp.ClientSession, provider: ProviderSpec, worker: str
) -> WorkerProbe:
    headers = bearer_headers(provider)
    try:
        listing, version = await asyncio.gather(
            get_json(session, worker, f"{worker}/models", headers),
            ollama_version(session, provider, worker),  # never raises
        )
    except UpstreamHttpError as exc:
        if exc.status in NOT_SERVED:
            raise UpstreamWrongApi(worker, wrong_api_message(worker, API_OPENAI)) from exc
        raise
    if not isinstance(listing, dict):
        raise UpstreamWrongApi(worker, wrong_api_message(worker, API_OPENAI))
    entries = [e for e in listing.get("data") or () if isinstance(e, dict)]  # ollama: null
    models = {
        e["id"]: e["created"] if isinstance(e.get("created"), int) else 0
        for e in entries
        if isinstance(e.get("id"), str)
    }
    if version is not None:
        return WorkerProbe(
            SERVER_OLLAMA, version, models, await ollama_loaded(session, provider, worker)
        )
    if entries and all(e.get("owned_by") == LLAMA_CPP_OWNER for e in entries):
        build = await llama_cpp_build(session, provider, worker)
        return WorkerProbe(SERVER_LLAMA_CPP, build, models, llama_cpp_loaded(entries))
    return WorkerProbe(SERVER_OPENAI, "", models, None)


def llama_cpp_loaded(entries: list[dict[str, Any]]) -> list[LoadedModel]:
    """A single-model llama-server has what it lists loaded; in router mode each entry
    carries `status.value` (`loaded`, `unloaded`, …)."""
    loaded = []
    for entry in entries:
        status = entry.get("status")
        if isinstance(status, dict) and status.get("value") != "loaded":
            continue
        meta = entry.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        loaded.append(
            LoadedModel(
                name=str(entry.get("id")),
                size_bytes=float(meta.get("size") or 0),
                context_length=int(meta.get("n_ctx") or 0),
            )
        )
    return loaded


async def llama_cpp_build(
    session: aiohttp.ClientSession, provider: ProviderSpec, worker: str
) -> str:
    """llama-server's `build_info` (e.g. `b6123-abcdef0`) from `/props`; "" if hidden."""
    try:
        props = await get_json(
            session, worker, native_root(worker) + "/props", bearer_headers(provider)
        )
    except UpstreamFailure:
        return ""
    build = props.get("build_info") if isinstance(props, dict) else None
    return build if isinstance(build, str) else ""
