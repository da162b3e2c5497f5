"""Server-sent events decoding (the OpenAI streaming wire format)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


async def sse_data(lines: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """The `data` of each event; comments, `event:` and `id:` lines are skipped."""
    pending: list[str] = []
    async for raw in lines:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if pending:
                yield "\n".join(pending)
                pending = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            pending.append(value[1:] if value.startswith(" ") else value)
    if pending:
        yield "\n".join(pending)
