"""Server-sent events decoding (the OpenAI streaming wire format)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


async def sse_data(line_batches: AsyncIterable[list[bytes]]) -> AsyncIterator[list[str]]:
    """The `data` of each event, a list per batch of lines (see read_line_batches); comments,
    `event:` and `id:` lines are skipped. An event may span batches."""
    pending: list[str] = []
    async for lines in line_batches:
        events: list[str] = []
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not line:
                if pending:
                    events.append("\n".join(pending))
                    pending = []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            if name == "data":
                pending.append(value[1:] if value.startswith(" ") else value)
        if events:
            yield events
    if pending:
        yield ["\n".join(pending)]
