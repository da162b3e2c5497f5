"""Every tool the gateway can run: built-ins, plugin tools and MCP servers' tools, found
by name; and running one call: arguments checked against the tool's JSON Schema first,
the time bounded, every failure turned into text for the model (never a 500)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

from clawgate.common.errors import ApiError
from clawgate.plugins import Tool, ToolError
from services.chat.tools.mcp_client import SEPARATOR, McpServer, McpUnavailable

log = logging.getLogger("clawgate.tools")

MAX_RESULT_CHARS = 32768


@dataclass(frozen=True)
class ToolResult:
    text: str  # what the model sees
    ok: bool


class ToolRegistry:
    def __init__(
        self, local: Sequence[Tool], mcp: Sequence[McpServer] = (), timeout_s: float = 30.0
    ) -> None:
        self._local: dict[str, Tool] = {}
        for tool in local:
            if tool.name in self._local:
                log.error(
                    "duplicate tool name ignored",
                    extra={
                        "tool": tool.name,
                        "source": tool.source,
                        "kept": self._local[tool.name].source,
                    },
                )
                continue
            self._local[tool.name] = tool
        self._mcp = {server.spec.name: server for server in mcp}
        self._timeout_s = timeout_s

    async def available(self) -> tuple[list[Tool], dict[str, str]]:
        """Every tool, and the MCP servers that could not be listed (name → why)."""
        tools = list(self._local.values())
        problems: dict[str, str] = {}
        listed = await asyncio.gather(
            *(server.tools() for server in self._mcp.values()), return_exceptions=True
        )
        for name, result in zip(self._mcp, listed, strict=True):
            if isinstance(result, BaseException):
                problems[name] = str(result)
                log.warning(
                    "mcp server unavailable", extra={"mcp_server": name, "error": str(result)}
                )
            else:
                tools += result
        return tools, problems

    async def find(self, names: Iterable[str]) -> list[Tool]:
        """The named tools; 400 for a name that exists nowhere, 503 when its MCP server is down."""
        found: list[Tool] = []
        for name in names:
            tool = self._local.get(name)
            if tool is None:
                tool = await self._mcp_tool(name)
            found.append(tool)
        return found

    async def _mcp_tool(self, name: str) -> Tool:
        server_name, _, _ = name.partition(SEPARATOR)
        server = self._mcp.get(server_name) if SEPARATOR in name else None
        if server is not None:
            try:
                tools = await server.tools()
            except (McpUnavailable, TimeoutError) as exc:
                raise ApiError(
                    503,
                    f"The tool '{name}' is unavailable: {exc or 'timed out'}. Try again later.",
                    code="tool_unavailable",
                ) from None
            for tool in tools:
                if tool.name == name:
                    return tool
        raise ApiError(
            400,
            f"The tool '{name}' does not exist on this gateway; list tools with GET /api/v1/tools.",
            param="tools",
            code="tool_not_found",
        )

    async def run(self, tool: Tool, arguments: str) -> ToolResult:
        """One call: parse and check the arguments, run with the time limit, report."""
        started = time.perf_counter()
        try:
            parsed = _parse_arguments(arguments, tool)
            async with asyncio.timeout(self._timeout_s):
                value = await tool.handler(parsed)
            text = (
                value
                if isinstance(value, str)
                else json.dumps(value, ensure_ascii=False, default=str)
            )
            result = ToolResult(text[:MAX_RESULT_CHARS], True)
        except ToolError as exc:
            result = ToolResult(f"Error: {exc}", False)
        except TimeoutError:
            result = ToolResult(
                f"Error: the tool did not finish within {self._timeout_s:g}s", False
            )
        except Exception as exc:
            log.exception("tool failed", extra={"tool": tool.name, "source": tool.source})
            result = ToolResult(f"Error: the tool failed ({type(exc).__name__})", False)
        log.info(
            "tool call",
            extra={
                "tool": tool.name,
                "source": tool.source,
                "ok": result.ok,
                "ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )
        return result

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self._mcp.values()), return_exceptions=True)


def _parse_arguments(arguments: str, tool: Tool) -> dict[str, Any]:
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError as exc:
        raise ToolError(f"the arguments are not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise ToolError("the arguments must be a JSON object")
    try:
        jsonschema.validate(parsed, tool.parameters)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ToolError(f"invalid arguments at {where}: {exc.message}") from None
    except jsonschema.SchemaError:
        raise ToolError("the tool's parameter schema is invalid; tell the operator") from None
    return parsed
