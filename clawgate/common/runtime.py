"""How every service process runs its event loop.

uvloop (libuv) instead of asyncio's pure-Python selector loop: the gateway's hot path is
socket I/O and callbacks (gRPC completions, Redis, the upstream), where uvloop cut the chat
service's CPU per request by about 7% (bench/README.md). `CLAWGATE_EVENT_LOOP=asyncio`
runs the standard loop instead (for debugging, or a platform without uvloop).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any

LOOP_ENV = "CLAWGATE_EVENT_LOOP"


def run(main: Coroutine[Any, Any, None]) -> None:
    if os.environ.get(LOOP_ENV, "uvloop").strip().lower() == "asyncio":
        asyncio.run(main)
        return
    import uvloop

    uvloop.run(main)
