"""Move a leading `<think>…</think>` block out of content, for servers older than 0.9/0.11.

Older ollama (and some OpenAI-compatible servers) put Qwen3's thinking inside `content`.
The tags may be split across chunks, so this is a small state machine fed chunk by chunk.
"""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"


class ThinkTagSplitter:
    """feed(content) → (reasoning, content) pieces; flush() at the end of the answer."""

    def __init__(self) -> None:
        self._state = "start"  # start → thinking → after → content
        self._buffer = ""

    def feed(self, text: str) -> tuple[str, str]:
        if not text:
            return "", ""
        if self._state == "content":
            return "", text
        self._buffer += text
        reasoning, content = "", ""
        if self._state == "start":
            stripped = self._buffer.lstrip()
            if OPEN.startswith(stripped):
                return "", ""  # could still become "<think>": wait for more
            if not stripped.startswith(OPEN):
                self._state, content, self._buffer = "content", self._buffer, ""
                return "", content
            self._state, self._buffer = "thinking", stripped[len(OPEN) :]
        if self._state == "thinking":
            end = self._buffer.find(CLOSE)
            if end < 0:
                keep = _partial_suffix(self._buffer, CLOSE)
                reasoning = self._buffer[: len(self._buffer) - keep]
                self._buffer = self._buffer[len(self._buffer) - keep :]
                return reasoning, ""
            reasoning = self._buffer[:end]
            self._state, self._buffer = "after", self._buffer[end + len(CLOSE) :]
        if self._state == "after":
            # Qwen writes "</think>\n\n" before the answer.
            self._buffer = self._buffer.lstrip()
            if self._buffer:
                self._state, content, self._buffer = "content", self._buffer, ""
        return reasoning, content

    def flush(self) -> tuple[str, str]:
        rest, self._buffer = self._buffer, ""
        if self._state == "thinking":
            return rest, ""
        return "", rest if self._state != "after" else ""


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a beginning of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0
