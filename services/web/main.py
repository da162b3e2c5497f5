"""The web console process: load the files, then serve until SIGTERM (aiohttp drains)."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from clawgate.common import logging as clawgate_logging
from clawgate.common import runtime
from clawgate.common.config import load_config_or_exit
from services.web import assets
from services.web.access_log import AccessLogger, access_logger
from services.web.app import create_app

log = logging.getLogger("clawgate.web")
GRACE_S = 5.0


async def run(address: str) -> None:
    host, _, port = address.rpartition(":")
    # `[::]:50054` in containers means every interface, IPv4 too: asyncio binds `::`
    # IPv6-only, so bind with no host (aiohttp then listens on both families).
    bind: str | None = host.strip("[]")
    if bind in ("::", "0.0.0.0"):
        bind = None
    bundle = assets.load()
    runner = web.AppRunner(
        create_app(bundle),
        access_log_class=AccessLogger,
        access_log=access_logger(),
        shutdown_timeout=GRACE_S,
    )
    await runner.setup()
    await web.TCPSite(runner, bind if bind != "" else "127.0.0.1", int(port)).start()
    log.info("serving", extra={"address": address, "version": bundle.version})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_s": GRACE_S})
    await runner.cleanup()
    log.info("stopped")


def main() -> None:
    config = load_config_or_exit()
    clawgate_logging.setup("web", config.log_level)
    runtime.run(run(config.listen.web))
