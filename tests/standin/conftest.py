"""Fixtures for the ollama stand-in tests: a fresh stand-in on a free port per test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from services.ollama_standin import Settings, run_standin

USER_HI = [{"role": "user", "content": "What is the capital of France?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city", "days"],
            },
        },
    }
]
ASK_TOOL = [{"role": "user", "content": "Use get_weather for Tokyo please"}]


@dataclass
class Standin:
    """A running stand-in plus an HTTP client and small helpers to talk to it."""

    base_url: str
    http: aiohttp.ClientSession

    async def patch(self, **changes: Any) -> dict[str, Any]:
        async with self.http.patch(f"{self.base_url}/_standin/settings", json=changes) as resp:
            assert resp.status == 200, await resp.text()
            data: dict[str, Any] = await resp.json()
            return data

    async def requests(self) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.base_url}/_standin/requests") as resp:
            data: dict[str, Any] = await resp.json()
            records: list[dict[str, Any]] = data["requests"]
            return records

    async def v1(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.http.post(f"{self.base_url}/v1/chat/completions", json=body) as resp:
            return resp.status, await resp.json(content_type=None)

    async def v1_stream(self, body: dict[str, Any]) -> list[str]:
        """The `data:` payloads of an SSE stream, raw ("[DONE]" included)."""
        async with self.http.post(
            f"{self.base_url}/v1/chat/completions", json={**body, "stream": True}
        ) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["Content-Type"] == "text/event-stream"
            return sse_payloads(await resp.text())

    async def native(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.http.post(f"{self.base_url}/api/chat", json=body) as resp:
            return resp.status, await resp.json(content_type=None)

    async def native_stream(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        async with self.http.post(f"{self.base_url}/api/chat", json=body) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["Content-Type"] == "application/x-ndjson"
            return [json.loads(line) for line in (await resp.text()).splitlines()]


def sse_payloads(text: str) -> list[str]:
    frames = text.split("\n\n")
    assert frames[-1] == "", "every SSE frame ends with a blank line"
    payloads = []
    for frame in frames[:-1]:
        assert frame.startswith("data: "), frame  # no event:/id:/comment lines
        payloads.append(frame.removeprefix("data: "))
    return payloads


def chunks_of(payloads: list[str]) -> list[dict[str, Any]]:
    return [json.loads(p) for p in payloads if p != "[DONE]"]


def fast_settings(**overrides: Any) -> Settings:
    return Settings(token_delay_ms=1.0).patched(overrides)


@pytest.fixture
async def standin() -> AsyncIterator[Standin]:
    async with run_standin(fast_settings()) as base_url, aiohttp.ClientSession() as http:
        yield Standin(base_url, http)
