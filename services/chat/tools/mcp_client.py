"""MCP servers as tool sources: each configured server (a stdio command the chat service
starts, or a streamable-HTTP URL) is connected lazily on first use, once per chat
process, and reconnected (the stdio process restarted) after it fails.

Its tools are offered as `<server>__<tool>` (only those in its `allow` list, if one is
set); every call is bounded by the server's `timeoutSeconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from contextlib import AsyncExitStack
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import get_default_environment, stdio_client
from mcp.client.streamable_http import streamablehttp_client

from clawgate.common.extensions import McpServerSpec
from clawgate.plugins import Tool, ToolError

SEPARATOR = "__"

log = logging.getLogger("clawgate.mcp")


class McpUnavailable(Exception):
    """The server could not be started or reached; the message says why."""


class McpServer:
    def __init__(self, spec: McpServerSpec) -> None:
        self.spec = spec
        self._session: ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tools: list[Tool] | None = None

    async def tools(self) -> list[Tool]:
        """The allowed tools of this server (listed once per connection)."""
        session = await self._connected()
        if self._tools is None:
            async with asyncio.timeout(self.spec.timeout_s):
                listed = await session.list_tools()
            allow = self.spec.allow
            self._tools = [
                self._tool(t.name, t.description or "", dict(t.inputSchema))
                for t in listed.tools
                if allow is None or t.name in allow
            ]
        return self._tools

    def _tool(self, name: str, description: str, schema: dict[str, Any]) -> Tool:
        async def handler(arguments: dict[str, Any]) -> str:
            return await self.call(name, arguments)

        return Tool(
            name=f"{self.spec.name}{SEPARATOR}{name}",
            description=description,
            parameters=schema or {"type": "object"},
            handler=handler,
            source=f"mcp:{self.spec.name}",
        )

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        try:
            session = await self._connected()
        except McpUnavailable as exc:
            raise ToolError(str(exc)) from None
        timeout = dt.timedelta(seconds=self.spec.timeout_s)
        try:
            async with asyncio.timeout(self.spec.timeout_s + 1):
                result = await session.call_tool(name, arguments, read_timeout_seconds=timeout)
        except TimeoutError:
            raise ToolError(
                f"the MCP server {self.spec.name!r} did not answer within {self.spec.timeout_s:g}s"
            ) from None
        except Exception as exc:
            # Most likely the server died (a stdio process that exited keeps no error
            # state we could poll): drop the connection, the next call starts it again.
            async with self._lock:
                if self._session is session:
                    await self._halt()
            raise ToolError(f"the MCP server {self.spec.name!r} failed: {exc}") from None
        text = _result_text(result.content, result.structuredContent)
        if result.isError:
            raise ToolError(text or "the tool reported an error")
        return text

    async def _connected(self) -> ClientSession:
        async with self._lock:
            if self._session is not None and self._runner is not None and not self._runner.done():
                return self._session
            self._forget()
            ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
            self._stop = asyncio.Event()
            self._runner = asyncio.create_task(self._run(ready), name=f"mcp:{self.spec.name}")
            try:
                async with asyncio.timeout(self.spec.timeout_s):
                    self._session = await asyncio.shield(ready)
            except TimeoutError:
                await self._halt()
                raise McpUnavailable(
                    f"the MCP server {self.spec.name!r} did not start within "
                    f"{self.spec.timeout_s:g}s"
                ) from None
            except Exception as exc:
                await self._halt()
                raise McpUnavailable(
                    f"the MCP server {self.spec.name!r} failed to start: {exc}"
                ) from None
            log.info("mcp server connected", extra={"mcp_server": self.spec.name})
            return self._session

    async def _run(self, ready: asyncio.Future[ClientSession]) -> None:
        """Owns the connection (the transport's task group lives in this task)."""
        try:
            async with AsyncExitStack() as stack:
                if self.spec.command:
                    params = StdioServerParameters(
                        command=self.spec.command[0],
                        args=list(self.spec.command[1:]),
                        env={**get_default_environment(), **self.spec.env},
                    )
                    read, write = await stack.enter_async_context(stdio_client(params))
                else:
                    read, write, _ = await stack.enter_async_context(
                        streamablehttp_client(self.spec.url, timeout=self.spec.timeout_s)
                    )
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                ready.set_result(session)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else McpUnavailable(str(exc)))
            if not isinstance(exc, asyncio.CancelledError):
                log.warning(
                    "mcp server connection ended",
                    extra={"mcp_server": self.spec.name, "error": repr(exc)},
                )
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
        finally:
            self._session = None

    def _forget(self) -> None:
        self._session = None
        self._tools = None

    async def _halt(self) -> None:
        self._stop.set()
        if self._runner is not None:
            with contextlib.suppress(BaseException):
                async with asyncio.timeout(5):
                    await self._runner
            if not self._runner.done():
                self._runner.cancel()
        self._forget()

    async def close(self) -> None:
        await self._halt()


def _result_text(content: list[Any], structured: dict[str, Any] | None) -> str:
    parts = []
    for item in content:
        kind = getattr(item, "type", "")
        if kind == "text":
            parts.append(str(item.text))
        else:
            parts.append(f"[{kind} content]")
    if not parts and structured is not None:
        return json.dumps(structured, ensure_ascii=False)
    return "\n".join(parts)
