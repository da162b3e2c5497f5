"""The built-in tools, each off unless enabled under `tools.builtin` in the config:
`current_time`, `calculator` and `http_fetch` (GET only, allow-listed domains, bounded
size and time)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp

from clawgate.common.extensions import ToolSettings
from clawgate.plugins import Tool, ToolError
from services.chat.tools.calculator import CalculatorError, evaluate

DEFAULT_FETCH_BYTES = 65536
DEFAULT_FETCH_SECONDS = 5.0


async def current_time(arguments: dict[str, Any]) -> str:
    zone_name = arguments.get("timezone") or "UTC"
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(
            f"unknown time zone {zone_name!r}; use an IANA name such as 'Europe/Paris'"
        ) from None
    return dt.datetime.now(zone).isoformat(timespec="seconds")


async def calculator(arguments: dict[str, Any]) -> str:
    try:
        return str(evaluate(arguments["expression"]))
    except CalculatorError as exc:
        raise ToolError(str(exc)) from None


def http_fetch_tool(settings: Mapping[str, Any], session: aiohttp.ClientSession) -> Tool:
    allowed = tuple(str(d).lower().lstrip(".") for d in settings.get("allowDomains") or ())
    max_bytes = int(settings.get("maxBytes", DEFAULT_FETCH_BYTES))
    timeout = aiohttp.ClientTimeout(
        total=float(settings.get("timeoutSeconds", DEFAULT_FETCH_SECONDS))
    )

    def permitted(host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == d or host.endswith("." + d) for d in allowed)

    async def fetch(arguments: dict[str, Any]) -> str:
        url = str(arguments["url"])
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ToolError("only absolute http:// or https:// URLs can be fetched")
        if not permitted(parts.hostname):
            raise ToolError(
                f"the domain {parts.hostname!r} is not allowed; allowed: "
                + (", ".join(allowed) or "none (set tools.builtin.http_fetch.allowDomains)")
            )
        try:
            # Redirects are not followed: they could lead outside the allow-list.
            async with session.get(url, allow_redirects=False, timeout=timeout) as reply:
                body = await reply.content.read(max_bytes + 1)
                text = body[:max_bytes].decode(reply.charset or "utf-8", errors="replace")
                cut = " (truncated)" if len(body) > max_bytes else ""
                location = reply.headers.get("Location")
                head = f"HTTP {reply.status}{cut}" + (f", Location: {location}" if location else "")
                return f"{head}\n\n{text}"
        except TimeoutError:
            raise ToolError(f"no complete answer from {parts.hostname} in time") from None
        except aiohttp.ClientError as exc:
            raise ToolError(f"fetch failed: {type(exc).__name__}") from None

    return Tool(
        name="http_fetch",
        description=(
            "Fetch a web page with HTTP GET and return its status and text "
            f"(first {max_bytes} bytes). Allowed domains: {', '.join(allowed) or 'none'}."
        ),
        parameters={
            "type": "object",
            "properties": {"url": {"type": "string", "description": "http(s) URL to GET"}},
            "required": ["url"],
            "additionalProperties": False,
        },
        handler=fetch,
        source="builtin",
    )


def builtin_tools(settings: ToolSettings, session: aiohttp.ClientSession) -> list[Tool]:
    """The enabled built-in tools."""
    tools: list[Tool] = []
    if settings.builtin_enabled("current_time"):
        tools.append(
            Tool(
                name="current_time",
                description="The current date and time (ISO 8601) in a time zone.",
                parameters={
                    "type": "object",
                    "properties": {
                        "timezone": {
                            "type": "string",
                            "description": "IANA time zone, e.g. 'Europe/Paris'; default UTC",
                        }
                    },
                    "required": [],
                    "additionalProperties": False,
                },
                handler=current_time,
                source="builtin",
            )
        )
    if settings.builtin_enabled("calculator"):
        tools.append(
            Tool(
                name="calculator",
                description=(
                    "Evaluate an arithmetic expression: numbers, + - * / // % **, "
                    "parentheses, sqrt, abs, round, min, max, floor, ceil, log, exp, sin, "
                    "cos, tan, pi, e."
                ),
                parameters={
                    "type": "object",
                    "properties": {"expression": {"type": "string"}},
                    "required": ["expression"],
                    "additionalProperties": False,
                },
                handler=calculator,
                source="builtin",
            )
        )
    if settings.builtin_enabled("http_fetch"):
        tools.append(http_fetch_tool(settings.builtin["http_fetch"], session))
    return tools
