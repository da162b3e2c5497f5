"""Which tool names an agent may list: asked of the chat service (ChatService.ListTools).

The chat service is the one place that knows every tool: built-ins and plugin tools come
from its config and installed packages, MCP tools from the servers it runs, and it is
the one that runs them. So agents are validated against its live list (with the
caller's authorization forwarded) rather than a second reading of the config here. When
the chat service cannot be reached, setting tools fails with 503 (fail closed); agents
without tools never need it.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from clawgate.chat.v1 import chat_service_pb2 as chat_pb
from clawgate.chat.v1 import chat_service_pb2_grpc as chat_grpc
from clawgate.common.errors import ApiError, invalid

DEADLINE_S = 10.0  # the first listing may start MCP servers
MAX_TOOLS = 64
_FORWARDED = frozenset({"authorization", "x-request-id"})


class ToolCatalog:
    def __init__(self, chat_target: str) -> None:
        self._target = chat_target
        self._stub: chat_grpc.ChatServiceAsyncStub | None = None
        self._channel: grpc.aio.Channel | None = None

    async def check(self, names: Sequence[str], metadata: Sequence[tuple[str, str]]) -> None:
        """400 naming the unknown tools (and the known ones), 503 if chat is unreachable."""
        if not names:
            return
        if len(names) > MAX_TOOLS:
            raise invalid(f"an agent can have at most {MAX_TOOLS} tools", "tools")
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(self._target)
            self._stub = chat_grpc.ChatServiceStub(self._channel)
        forwarded = [(k, v) for k, v in metadata if k in _FORWARDED]
        try:
            listed = await self._stub.ListTools(
                chat_pb.ListToolsRequest(), metadata=forwarded, timeout=DEADLINE_S
            )
        except grpc.aio.AioRpcError as err:
            raise ApiError(
                503,
                "cannot check the agent's tools: the chat service did not answer "
                f"({err.code().name}); try again shortly",
                code="tools_unavailable",
            ) from None
        known = {tool.name for tool in listed.data}
        unknown = [n for n in names if n not in known]
        if unknown:
            down = "".join(
                f"; MCP server {s.name!r} is unavailable ({s.reason})" for s in listed.unavailable
            )
            raise ApiError(
                400,
                f"unknown tools: {', '.join(unknown)}; available: "
                f"{', '.join(sorted(known)) or 'none'} (GET /api/v1/tools){down}",
                param="tools",
                code="tool_not_found",
            )

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
