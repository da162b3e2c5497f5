"""An audit log for Clawgate: one JSON line per chat request (who, which model, how long,
how many tokens; never the conversation), and a tool that tells how many requests this
gateway process has audited.

Config:

    plugins:
      audit:
        enabled: true
        onError: skip        # an audit problem must not fail the request
        timeoutMs: 500
        settings: {path: /var/log/clawgate/audit.jsonl}
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clawgate.plugins import Plugin, PluginContext, Tool, tool


class AuditPlugin(Plugin):
    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.path = Path(settings.get("path", "audit.jsonl"))
        self.audited = 0
        self._lock = asyncio.Lock()  # one writer at a time: lines never interleave

    async def before_request(self, request: dict[str, Any], ctx: PluginContext) -> None:
        ctx.state["started"] = time.monotonic()
        ctx.state["chunks"] = 0

    async def on_chunk(self, chunk: dict[str, Any], ctx: PluginContext) -> None:
        ctx.state["chunks"] += 1

    async def after_response(
        self, request: dict[str, Any], response: dict[str, Any], ctx: PluginContext
    ) -> None:
        entry = {
            "ts": round(time.time(), 3),
            "request_id": ctx.request_id,
            "token_id": ctx.token_id,
            "requested_model": ctx.requested_model,
            "model": request["model"],
            "agent_id": ctx.agent_id,
            "stream": ctx.stream,
            "chunks": ctx.state["chunks"],
            "finish_reason": response["choices"][0]["finish_reason"],
            "usage": response.get("usage"),
            "ms": round((time.monotonic() - ctx.state["started"]) * 1000, 1),
        }
        line = json.dumps(entry) + "\n"
        async with self._lock:
            await asyncio.to_thread(self._append, line)  # file I/O off the event loop
            self.audited += 1

    def _append(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)

    def tools(self) -> Sequence[Tool]:
        @tool
        async def audit_count() -> str:
            """How many chat requests this gateway process has audited so far."""
            return f"{self.audited} requests audited"

        return [audit_count]
