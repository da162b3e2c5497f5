"""`api: "openai-completions"`: ollama's /v1 or any OpenAI-compatible server.

Accepts every streaming format ollama has shipped (role in every chunk or only the first,
finish on the last content chunk or in its own chunk), `reasoning` or
`reasoning_content`, and `<think>` tags inside content. An answer counts as complete only
with a finish_reason and `data: [DONE]`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp

from clawgate.common.config import API_OPENAI, ProviderSpec
from services.chat.providers.base import (
    DEFAULT_LIMITS,
    Delta,
    ReadLimits,
    Target,
    UpstreamCut,
    UpstreamHttpError,
    UpstreamStreamError,
    Usage,
    bearer_headers,
    extra_fields,
    stream_item,
)
from services.chat.providers.error_texts import named
from services.chat.providers.http import open_stream, read_line_batches
from services.chat.providers.openai_probe import probe_openai
from services.chat.providers.probe import WorkerProbe
from services.chat.providers.sse import sse_data
from services.chat.providers.think_tags import ThinkTagSplitter
from services.chat.request import ChatRequest


class OpenAICompatAdapter:
    async def stream(
        self,
        session: aiohttp.ClientSession,
        target: Target,
        request: ChatRequest,
        limits: ReadLimits = DEFAULT_LIMITS,
    ) -> AsyncGenerator[list[Delta], None]:
        body = {
            **request.body,
            "model": target.model.id,
            "stream": True,
            # Usage is needed for accounting even when the client did not ask for it.
            "stream_options": {"include_usage": True},
        }
        url = f"{target.worker}/chat/completions"
        state = _StreamState()
        try:
            async with open_stream(
                session, target.worker, url, body, bearer_headers(target.provider), limits
            ) as response:
                lines = read_line_batches(target.worker, response, limits)
                async for events in sse_data(lines):
                    deltas: list[Delta] = []
                    for data in events:
                        if data.strip() == "[DONE]":
                            state.done = True
                            break
                        deltas += state.read(target.worker, data)
                    if deltas:
                        yield deltas
                    if state.done:
                        break
        except UpstreamHttpError as exc:
            raise named(exc, API_OPENAI) from None
        if not state.done or state.finish_reason is None:
            raise UpstreamCut(target.worker, "the answer ended before it was finished")

    async def probe(
        self, session: aiohttp.ClientSession, provider: ProviderSpec, worker: str
    ) -> WorkerProbe:
        return await probe_openai(session, provider, worker)


class _StreamState:
    """Turns one OpenAI chunk after another into deltas."""

    def __init__(self) -> None:
        self.done = False
        self.finish_reason: str | None = None
        self._think = ThinkTagSplitter()
        self._tool_index = 0
        self._pending_extra: dict[str, Any] = {}

    def read(self, worker: str, data: str) -> list[Delta]:
        chunk = stream_item(worker, data, "stream chunk")
        if chunk.get("error") is not None:
            raise UpstreamStreamError(worker, _error_text(chunk["error"]))
        deltas: list[Delta] = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            deltas.extend(self._choice(choice))
        usage = chunk.get("usage")
        if isinstance(usage, dict) and "prompt_tokens" in usage:
            deltas.append(Delta(usage=Usage.from_json(usage)))
        extra = extra_fields(chunk)
        if not deltas:
            # e.g. llama.cpp's role chunk: its fingerprint rides on the next delta (an
            # empty delta would count as the first token, which ends retries).
            self._pending_extra.update(extra)
            return []
        if self._pending_extra:
            extra, self._pending_extra = {**self._pending_extra, **extra}, {}
        for delta in deltas:
            delta.extra = extra
        return deltas

    def _choice(self, choice: dict[str, Any]) -> list[Delta]:
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning") or delta.get("reasoning_content") or ""
        think, content = self._think.feed(delta.get("content") or "")
        out = Delta(content=content, reasoning=str(reasoning) + think)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                out.tool_calls.append(self._tool_call(call))
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
            out.logprobs = logprobs["content"]
        deltas = [out] if out.has_output else []
        if choice.get("finish_reason"):
            think, content = self._think.flush()
            if think or content:
                deltas.append(Delta(content=content, reasoning=think))
            self.finish_reason = str(choice["finish_reason"])
            deltas.append(Delta(finish_reason=self.finish_reason))
        return deltas

    def _tool_call(self, call: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"index": call.get("index", self._tool_index)}
        self._tool_index = max(self._tool_index, int(out["index"]) + 1)
        if call.get("id"):
            out["id"] = call["id"]
            out["type"] = "function"
        function = call.get("function") or {}
        fn: dict[str, Any] = {}
        if function.get("name"):
            fn["name"] = function["name"]
        arguments = function.get("arguments")
        if arguments is not None:
            fn["arguments"] = (
                arguments
                if isinstance(arguments, str)
                else json.dumps(arguments, ensure_ascii=False)
            )
        out["function"] = fn
        return out


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)
