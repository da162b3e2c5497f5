"""What every edge test checks: OpenAI-shaped errors, and neighbour streams that survive."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

# An error body may quote a client value, but only a short excerpt (clawgate/common/errors.py).
MAX_ERROR_MESSAGE = 1100


def openai_error(status: int, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The `error` object of an OpenAI-shaped error reply; fails the test otherwise."""
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, body)
    parsed = json.loads(body)
    assert set(parsed) == {"error"}, parsed
    error: dict[str, Any] = parsed["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert len(error["message"]) <= MAX_ERROR_MESSAGE, len(error["message"])
    assert isinstance(error["type"], str) and error["type"], error
    return error


@dataclass
class Neighbours:
    """Streaming chats by other clients, open while a test does something nasty; each must
    still end with `data: [DONE]`."""

    base_url: str
    token: str
    count: int = 5
    max_tokens: int = 400
    _tasks: list[asyncio.Task[tuple[int, bytes]]] = field(default_factory=list)

    async def start(self, http: aiohttp.ClientSession) -> None:
        """Open the streams and return once every one has sent its first chunk."""
        started = [asyncio.Event() for _ in range(self.count)]
        self._tasks = [
            asyncio.create_task(self._stream(http, i, started[i])) for i in range(self.count)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), timeout=30)

    async def finish(self) -> list[tuple[int, bytes]]:
        return list(await asyncio.wait_for(asyncio.gather(*self._tasks), timeout=120))

    async def assert_all_done(self) -> None:
        for status, body in await self.finish():
            assert status == 200, body[:500]
            assert body.rstrip().endswith(b"data: [DONE]"), body[-300:]

    async def _stream(
        self, http: aiohttp.ClientSession, index: int, started: asyncio.Event
    ) -> tuple[int, bytes]:
        body = {
            "model": "qwen3:32b",
            "stream": True,
            "max_tokens": self.max_tokens,
            "messages": [{"role": "user", "content": f"neighbour {index} {uuid.uuid4().hex}"}],
        }
        headers = {"Authorization": f"Bearer {self.token}", "Cache-Control": "no-store"}
        url = self.base_url + "/api/v1/chat/completions"
        chunks: list[bytes] = []
        try:
            async with http.post(url, json=body, headers=headers) as reply:
                async for chunk in reply.content.iter_any():
                    chunks.append(chunk)
                    started.set()
                return reply.status, b"".join(chunks)
        except aiohttp.ClientError as exc:  # e.g. the connection was cut mid-stream
            return -1, b"".join(chunks) + f"\n<cut: {exc!r}>".encode()
        finally:
            started.set()  # a stream that failed early must not hold `start` up
