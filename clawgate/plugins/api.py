"""`Plugin`, the context each hook gets, and `PluginError` (see the package docstring)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clawgate.plugins.tools import Tool

JSON = dict[str, Any]


class PluginError(Exception):
    """Raised by a hook to reject a request; the client gets an OpenAI error naming the plugin.

    `status` is the HTTP status (400 bad request, 403 not allowed, 429 slow down, …);
    `code` and `param` land in the error body as OpenAI clients expect them.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        code: str = "plugin_rejected",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param


@dataclass
class PluginContext:
    """What a hook knows about the call besides the request itself."""

    plugin: str  # this plugin's name in the config
    settings: Mapping[str, Any]  # this plugin's `settings` from the config
    requested_model: str  # as the client sent it, e.g. `agent:helper` or `qwen3:8b`
    token_id: str | None  # stable id of the caller's gateway token (never the token)
    request_id: str | None  # the x-request-id of the call, for logs
    agent_id: str | None  # set when the request named an agent
    stream: bool
    log: logging.Logger
    token_name: str | None = None  # the token's name (`clawgate token --list`), e.g. `ci-bot`
    # Scratch space of this plugin for this request (e.g. a start time set in
    # before_request and read in after_response).
    state: dict[str, Any] = field(default_factory=dict)


class Plugin:
    """Base class of plugins: override the hooks you need; the defaults change nothing.

    The gateway creates one instance per chat process with the plugin's `settings` and
    calls its hooks concurrently for many requests, so keep per-request data in
    `ctx.state`, never on `self`. Hooks must not block the event loop (use async I/O, or
    `asyncio.to_thread` for blocking work).
    """

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = settings

    async def before_request(self, request: JSON, ctx: PluginContext) -> JSON | None:
        """Before the model is called; the request is normalised OpenAI JSON with the
        agent already applied (`model` is the real model). Return a changed request or
        None; raise PluginError to reject."""
        return None

    async def after_response(
        self, request: JSON, response: JSON, ctx: PluginContext
    ) -> JSON | None:
        """After the whole answer (a chat.completion object). For JSON answers a returned
        object replaces the answer; for streams the chunks are already sent, so it only
        observes (use on_chunk to change streamed text)."""
        return None

    async def on_chunk(self, chunk: JSON, ctx: PluginContext) -> JSON | None:
        """Each chat.completion.chunk of a stream, before it is sent."""
        return None

    def tools(self) -> Sequence[Tool]:
        """Tools this plugin offers to agents (see `clawgate.plugins.tool`); asked once,
        when the chat service starts."""
        return ()
