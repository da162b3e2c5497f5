"""A model server that answers with recorded transcripts (tests/data/): the recorded
bytes, status and content type of a real server, replayed over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

DATA = Path(__file__).parent / "data"
JSON = "application/json; charset=utf-8"
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"
TEXT = "text/plain"


def recorded(name: str) -> Any:
    """A recorded JSON body, e.g. `recorded("ollama/api-ps.response.json")`."""
    return json.loads((DATA / name).read_bytes())


@dataclass(frozen=True)
class Reply:
    file: str
    status: int = 200
    content_type: str = JSON

    def body(self) -> bytes:
        return (DATA / self.file).read_bytes()


class ReplayServer:
    """Answers each path (any method) with its Reply; other paths with `fallback`.
    Remembers the Authorization header of every request."""

    def __init__(self, routes: Mapping[str, Reply], fallback: Reply) -> None:
        self.routes = dict(routes)
        self.fallback = fallback
        self.auth: list[tuple[str, str | None]] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app)

    async def _answer(self, request: web.Request) -> web.Response:
        self.auth.append((request.path, request.headers.get("Authorization")))
        reply = self.routes.get(request.path, self.fallback)
        return web.Response(
            status=reply.status, body=reply.body(), headers={"Content-Type": reply.content_type}
        )

    async def start(self) -> str:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self._runner.cleanup()
