"""The http_fetch built-in against a real local HTTP server: GET only within the domain
allow-list, size and time bounded, redirects reported rather than followed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from clawgate.plugins import Tool, ToolError
from services.chat.tools.builtin import http_fetch_tool


@pytest.fixture
async def site() -> AsyncIterator[str]:
    release = asyncio.Event()  # holds /slow until the test is over

    async def big(request: web.Request) -> web.Response:
        return web.Response(text="x" * 5000)

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://elsewhere.example/")

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    app = web.Application()
    app.add_routes([web.get("/big", big), web.get("/moved", moved), web.get("/slow", slow)])
    runner = web.AppRunner(app)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        release.set()
        await runner.cleanup()


@pytest.fixture
async def fetch() -> AsyncIterator[Tool]:
    settings = {"allowDomains": ["127.0.0.1"], "maxBytes": 1000, "timeoutSeconds": 0.5}
    async with aiohttp.ClientSession() as session:
        yield http_fetch_tool(settings, session)


async def test_fetch_is_bounded_in_size(site: str, fetch: Tool) -> None:
    text = await fetch.handler({"url": site + "/big"})
    assert text == "HTTP 200 (truncated)\n\n" + "x" * 1000


async def test_redirects_are_reported_not_followed(site: str, fetch: Tool) -> None:
    text = await fetch.handler({"url": site + "/moved"})
    assert text.startswith("HTTP 302, Location: http://elsewhere.example/")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/", "the domain 'example.com' is not allowed; allowed: 127.0.0.1"),
        ("file:///etc/passwd", "only absolute http"),
        ("/big", "only absolute http"),
    ],
)
async def test_other_domains_and_schemes_are_refused(fetch: Tool, url: str, reason: str) -> None:
    with pytest.raises(ToolError, match=reason):
        await fetch.handler({"url": url})


async def test_a_slow_site_times_out(site: str, fetch: Tool) -> None:
    with pytest.raises(ToolError, match="no complete answer"):
        await fetch.handler({"url": site + "/slow"})
