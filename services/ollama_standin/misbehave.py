"""Worker misbehaviour that real servers show under bugs or attack (gateway fault tests).

Not ollama behaviour: these exist so the gateway's defences can be tested against a real
HTTP server. Selected with `fail` in /_standin/settings:
- `flood`: a stream that never ends (content chunks as fast as the client reads,
  ignoring max_tokens), non-stream requests never end either;
- `stall`: `cut_after` chunks, then silence with the connection open;
- `garbage`: one of `garbage_kind`:
  `json` (200 SSE/NDJSON whose lines are not JSON), `content_type` (200 text/html page),
  `chunked` (a chunked body cut inside a chunk), `http` (bytes that are not HTTP),
  `long_line` (one endless line without a newline).
"""

from __future__ import annotations

import asyncio
from typing import Literal

from aiohttp import web

GarbageKind = Literal["json", "content_type", "chunked", "http", "long_line"]
GARBAGE_KINDS: tuple[GarbageKind, ...] = ("json", "content_type", "chunked", "http", "long_line")
FLOOD_PIECE = "flood " * 40
LONG_LINE_LIMIT = 64 * 1024 * 1024  # bytes of the endless line before giving up


def _raw(request: web.BaseRequest, data: bytes) -> web.Response:
    """Write `data` straight to the socket (no HTTP framing), then close it."""
    transport = request.transport
    if transport is not None:
        transport.write(data)
        transport.close()
    return web.Response()  # never reaches the client: the transport is closed


async def garbage(request: web.Request, kind: GarbageKind, content_type: str) -> web.StreamResponse:
    if kind == "http":
        return _raw(request, b"HTTP/1.1 2xx NOT-HTTP\r\n\x00\x01garbage\r\n\r\n{{{")
    if kind == "chunked":
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        return _raw(request, head + b'400\r\ndata: {"choices": [')
    if kind == "content_type":
        page = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"
        return web.Response(status=200, body=page, headers={"Content-Type": "text/html"})
    response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    await response.prepare(request)
    if kind == "long_line":
        sent = 0
        while sent < LONG_LINE_LIMIT and not _gone(request):
            await response.write(b"x" * 65536)
            sent += 65536
        return response
    await response.write(b"data: <<<not json>>>\n\n" if "event-stream" in content_type else b"}{\n")
    await response.write_eof()
    return response


async def flood(request: web.Request, chunk: bytes, content_type: str) -> web.StreamResponse:
    """Write `chunk` forever (until the client goes away)."""
    response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    await response.prepare(request)
    while not _gone(request):
        await response.write(chunk)
    return response


async def stall(request: web.Request) -> None:
    """Wait, sending nothing, until the client goes away (the server cancels handlers of
    clients that left: handler_cancellation)."""
    await asyncio.Event().wait()


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
