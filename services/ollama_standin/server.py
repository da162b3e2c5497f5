"""Running the stand-in on a real port, in-process (tests) or from the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from .app import create_app
from .settings import Settings
from .state import STATE, StandinState


class StandinServer:
    """A started stand-in. `base_url` is known after start() (port 0 picks a free one)."""

    def __init__(
        self, settings: Settings | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.app = create_app(settings)
        self.host = host
        self.port = port
        # handler_cancellation: a client disconnect cancels the handler at once, so the
        # request log shows "cancelled" promptly (aiohttp's default is to let it run on).
        self._runner = web.AppRunner(
            self.app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )

    @property
    def state(self) -> StandinState:
        return self.app[STATE]

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> str:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.base_url

    async def stop(self) -> None:
        await self._runner.cleanup()


@asynccontextmanager
async def run_standin(
    settings: Settings | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """`async with run_standin(Settings(), port=0) as base_url:` -> "http://127.0.0.1:PORT"."""
    server = StandinServer(settings, host, port)
    await server.start()
    try:
        yield server.base_url
    finally:
        await server.stop()
