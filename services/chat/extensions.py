"""Plugins and gateway tools for the chat pipeline, in one object the pipeline holds.

`prepare()` runs before a request is routed: the plugins' before_request hooks, then the
agent's tools are looked up and offered to the model. `exchange()` then makes the
`ExtendedExchange` that runs after_response/on_chunk and the tool loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from clawgate.chat.v1 import chat_service_pb2 as pb
from clawgate.common.config import Config
from clawgate.common.errors import ApiError
from clawgate.common.extensions import ToolSettings
from clawgate.plugins import Tool
from services.chat.plugin_host import PluginHost, PluginSession, load_plugins
from services.chat.request import ChatRequest, parse_request
from services.chat.tools.builtin import builtin_tools
from services.chat.tools.loop import ExtendedExchange
from services.chat.tools.mcp_client import McpServer
from services.chat.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from services.chat.pipeline import CallOptions, Exchange, Pipeline
    from services.chat.providers.base import Target


class Extensions:
    def __init__(self, host: PluginHost, registry: ToolRegistry, settings: ToolSettings) -> None:
        self.host = host
        self.registry = registry
        self.settings = settings

    @classmethod
    def from_config(cls, config: Config, session: aiohttp.ClientSession) -> Extensions:
        """Loads the enabled plugins (raises ConfigError for one that cannot be loaded)."""
        ext = config.extensions
        host = PluginHost(load_plugins(ext.plugins))
        local = [*builtin_tools(ext.tools, session), *host.tools()]
        servers = [McpServer(spec) for spec in ext.mcp_servers]
        return cls(host, ToolRegistry(local, servers, ext.tools.timeout_s), ext.tools)

    async def prepare(self, request: ChatRequest, call: CallOptions) -> Prepared:
        plugins: PluginSession | None = None
        if self.host.plugins:
            plugins = self.host.session(
                requested_model=request.requested_model,
                token_id=call.token_id,
                agent_id=request.agent_id,
                stream=request.stream,
            )
            request.body = await plugins.before_request(request.body, _revalidate)
        tools = await self._offer(request)
        return Prepared(self, plugins, tools)

    async def _offer(self, request: ChatRequest) -> list[Tool]:
        """The agent's gateway tools, added to the tools the model sees (a tool the client
        defined under the same name stays the client's)."""
        if not request.agent_tools:
            return []
        client = {t["function"]["name"] for t in request.body.get("tools", ())}
        try:
            found = await self.registry.find(request.agent_tools)
        except ApiError as error:
            if error.code != "tool_not_found":
                raise
            raise ApiError(
                400,
                f"The agent '{request.requested_model}' uses a tool this gateway does not have: "
                f"{error.message} Change the agent's tools with PATCH /api/v1/agents/{{id}}.",
                param="model",
                code="agent_tool_not_found",
            ) from None
        tools = [t for t in found if t.name not in client]
        if tools:
            request.body["tools"] = [
                *request.body.get("tools", ()),
                *(t.definition() for t in tools),
            ]
        return tools

    async def list_tools(self) -> pb.ListToolsResponse:
        tools, problems = await self.registry.available()
        reply = pb.ListToolsResponse(object="list")
        for tool in tools:
            item = reply.data.add(name=tool.name, description=tool.description, source=tool.source)
            item.parameters.update(tool.parameters)
        for name, reason in problems.items():
            reply.unavailable.add(name=name, reason=reason)
        return reply

    async def close(self) -> None:
        await self.registry.close()


@dataclass
class Prepared:
    """What prepare() decided for one request."""

    extensions: Extensions
    plugins: PluginSession | None
    tools: list[Tool]

    def exchange(
        self,
        pipeline: Pipeline,
        request: ChatRequest,
        targets: list[Target],
        estimate: int,
        call: CallOptions,
    ) -> Exchange:
        return ExtendedExchange(
            pipeline,
            request,
            targets,
            estimate,
            call,
            plugins=self.plugins,
            registry=self.extensions.registry,
            gateway_tools=self.tools,
            max_steps=self.extensions.settings.max_steps,
        )


def _revalidate(body: dict[str, Any]) -> dict[str, Any]:
    return parse_request(body).body


async def chunk_hook(exchange: Exchange, chunk: dict[str, Any]) -> dict[str, Any]:
    """on_chunk of the plugins, for exchanges that have them."""
    if isinstance(exchange, ExtendedExchange):
        return await exchange.on_chunk(chunk)
    return chunk
