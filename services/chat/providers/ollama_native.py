"""`api: "ollama"`: ollama's native /api/chat (NDJSON), which the /v1 layer cannot tune.

Native-only settings: `options.num_ctx` = the model's contextWindow (otherwise ollama
loads the model with its small default context), `options.num_predict` = max_tokens,
`keep_alive`, and `think` from reasoning_effort.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp

from clawgate.common.config import API_OLLAMA, ProviderSpec
from clawgate.common.errors import invalid
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
    stream_item,
)
from services.chat.providers.error_texts import named
from services.chat.providers.http import open_stream, read_line_batches
from services.chat.providers.ollama_probe import native_root, probe_native
from services.chat.providers.probe import WorkerProbe
from services.chat.providers.think_tags import ThinkTagSplitter
from services.chat.request import ChatRequest

_OPTION_FIELDS = ("temperature", "top_p", "seed", "stop", "frequency_penalty", "presence_penalty")
# gpt-oss takes think levels; other models only on/off (levels are a 400 before v0.17.7).
_GPT_OSS_LEVELS = {"minimal": "low", "low": "low", "medium": "medium"}
_DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,(?P<data>.+)$", re.DOTALL)
_ID_CHARS = string.ascii_lowercase + string.digits


class OllamaNativeAdapter:
    async def stream(
        self,
        session: aiohttp.ClientSession,
        target: Target,
        request: ChatRequest,
        limits: ReadLimits = DEFAULT_LIMITS,
    ) -> AsyncGenerator[list[Delta], None]:
        url = f"{native_root(target.worker)}/api/chat"
        body = native_body(target, request)
        state = _LineState()
        try:
            async with open_stream(
                session, target.worker, url, body, bearer_headers(target.provider), limits
            ) as response:
                async for lines in read_line_batches(target.worker, response, limits):
                    deltas: list[Delta] = []
                    for line in lines:
                        if line.strip():
                            deltas += state.read(target.worker, line)
                        if state.done:
                            break
                    if deltas:
                        yield deltas
                    if state.done:
                        break
        except UpstreamHttpError as exc:
            raise named(exc, API_OLLAMA) from None
        if not state.done:
            raise UpstreamCut(target.worker, "the answer ended before it was finished")

    async def probe(
        self, session: aiohttp.ClientSession, provider: ProviderSpec, worker: str
    ) -> WorkerProbe:
        return await probe_native(session, provider, worker)


def native_body(target: Target, request: ChatRequest) -> dict[str, Any]:
    source = request.body
    options: dict[str, Any] = {"num_ctx": target.model.context_window}
    if "max_tokens" in source:
        options["num_predict"] = source["max_tokens"]
    for name in _OPTION_FIELDS:
        if name in source:
            options[name] = source[name]
    body: dict[str, Any] = {
        "model": target.model.id,
        "messages": native_messages(source["messages"]),
        "stream": True,
        "options": options,
    }
    if request.keep_alive is not None:
        body["keep_alive"] = request.keep_alive
    response_format = source.get("response_format")
    if response_format is not None:
        if response_format["type"] == "json_object":
            body["format"] = "json"
        else:
            body["format"] = response_format.get("json_schema", {}).get("schema", {})
    if "tools" in source:
        body["tools"] = source["tools"]
    effort = source.get("reasoning_effort")
    if effort is not None:
        body["think"] = _think_value(target.model.id, effort)
    if source.get("logprobs"):
        body["logprobs"] = True
        if "top_logprobs" in source:
            body["top_logprobs"] = source["top_logprobs"]
    return body


def _think_value(model: str, effort: str) -> bool | str:
    if effort == "none":
        return False
    if model.startswith("gpt-oss"):
        return _GPT_OSS_LEVELS.get(effort, "high")
    return True


def native_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages in ollama's native shape (images base64, arguments as objects)."""
    tool_names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        native: dict[str, Any] = {"role": message["role"]}
        text, images = _split_content(index, message.get("content"))
        native["content"] = text
        if images:
            native["images"] = images
        if message.get("reasoning"):
            native["thinking"] = message["reasoning"]
        calls = []
        for call in message.get("tool_calls", ()):
            function = call["function"]
            tool_names[call["id"]] = function["name"]
            calls.append(
                {"function": {"name": function["name"], "arguments": _arguments(function)}}
            )
        if calls:
            native["tool_calls"] = calls
        if message["role"] == "tool":
            name = message.get("name") or tool_names.get(message.get("tool_call_id", ""))
            if name:
                native["tool_name"] = name
        out.append(native)
    return out


def _split_content(index: int, content: Any) -> tuple[str, list[str]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(content):
        if part["type"] == "text":
            texts.append(part["text"])
        elif part["type"] == "image_url":
            match = _DATA_URL.match(part["image_url"]["url"])
            if match is None:
                raise invalid(
                    "image URLs are not supported by ollama; send the image as a base64 "
                    "data URL (data:image/png;base64,...)",
                    f"messages[{index}].content[{j}].image_url.url",
                )
            images.append(match.group("data"))
    return "\n".join(texts), images


def _arguments(function: dict[str, Any]) -> Any:
    try:
        return json.loads(function.get("arguments") or "{}")
    except ValueError:
        return {}


class _LineState:
    """Turns native NDJSON lines into deltas."""

    def __init__(self) -> None:
        self.done = False
        self._think = ThinkTagSplitter()
        self._tools = 0

    def read(self, worker: str, line: bytes) -> list[Delta]:
        item = stream_item(worker, line, "stream line")
        if item.get("error") is not None:
            raise UpstreamStreamError(worker, str(item["error"]))
        message = item.get("message") or {}
        think, content = self._think.feed(message.get("content") or "")
        delta = Delta(content=content, reasoning=(message.get("thinking") or "") + think)
        for call in message.get("tool_calls") or ():
            delta.tool_calls.append(self._tool_call(call))
        deltas = [delta] if delta.has_output else []
        if item.get("done"):
            self.done = True
            think, content = self._think.flush()
            if think or content:
                deltas.append(Delta(content=content, reasoning=think))
            reason = item.get("done_reason")
            reason = reason if reason in ("stop", "length") else "stop"
            deltas.append(
                Delta(finish_reason="tool_calls" if self._tools and reason == "stop" else reason)
            )
            if "prompt_eval_count" in item or "eval_count" in item:
                usage = Usage(int(item.get("prompt_eval_count", 0)), int(item.get("eval_count", 0)))
                deltas.append(Delta(usage=usage))
        return deltas

    def _tool_call(self, call: dict[str, Any]) -> dict[str, Any]:
        function = call.get("function") or {}
        arguments = function.get("arguments", {})
        index = function.get("index", self._tools)
        self._tools += 1
        return {
            "index": index,
            "id": call.get("id") or "call_" + "".join(secrets.choice(_ID_CHARS) for _ in range(8)),
            "type": "function",
            "function": {
                "name": function.get("name", ""),
                "arguments": arguments
                if isinstance(arguments, str)
                else json.dumps(arguments, ensure_ascii=False),
            },
        }
