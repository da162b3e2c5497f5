"""Prompt token estimate, good enough to refuse prompts that cannot fit a context window.

No tokenizer is shipped: an estimate is enough to reject clearly oversized prompts before
they reach ollama (which would truncate or fail) and to fill in usage when an old server
sends none. CJK text runs close to one token per character in Qwen/Llama vocabularies;
other text averages about four characters per token.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

MESSAGE_OVERHEAD = 4  # role markers and separators of the chat template
IMAGE_TOKENS = 768  # a typical vision encoder budget per image
CHARS_PER_TOKEN = 4.0


def _is_wide(ch: str) -> bool:
    code = ord(ch)
    return (
        0x3000 <= code <= 0x9FFF  # CJK punctuation, kana, unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul
        or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x20000 <= code <= 0x2FFFF
    )


def text_tokens(text: str) -> int:
    """Estimated tokens of one piece of text."""
    if not text:
        return 0
    wide = sum(1 for ch in text if _is_wide(ch))
    return wide + math.ceil((len(text) - wide) / CHARS_PER_TOKEN)


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return text_tokens(content)
    total = 0
    for part in content or ():
        if part.get("type") == "text":
            total += text_tokens(part.get("text", ""))
        else:
            total += IMAGE_TOKENS
    return total


def prompt_tokens(
    messages: Iterable[Mapping[str, Any]], tools: Iterable[Mapping[str, Any]] = ()
) -> int:
    """Estimated prompt tokens of a conversation plus its tool definitions."""
    total = 3  # the assistant turn's opening
    for message in messages:
        total += MESSAGE_OVERHEAD + _content_tokens(message.get("content"))
        for call in message.get("tool_calls", ()):
            total += text_tokens(json.dumps(call, ensure_ascii=False))
    for tool in tools:
        total += text_tokens(json.dumps(tool, ensure_ascii=False))
    return total
