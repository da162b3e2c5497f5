"""`pii-redactor`: replaces e-mail addresses and phone numbers in user messages with
`[email]` and `[phone]` before the model (or the cache) sees them.

Settings: `roles` (default `[user]`), `email` and `phone` (default true).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from clawgate.plugins import Plugin, PluginContext

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# +33 6 12 34 56 78, (555) 123-4567, 555.123.4567, +1-202-555-0143: 7 to 15 digits with
# the usual separators; plain runs like years or amounts stay (they have < 7 digits or
# no phone shape).
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]\d{2,4}){1,4}(?!\w)"
    r"|(?<![\w+])\+\d{7,15}(?!\w)"
)
MIN_PHONE_DIGITS = 7


class PiiRedactor(Plugin):
    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.roles = frozenset(settings.get("roles") or ["user"])
        self.email = bool(settings.get("email", True))
        self.phone = bool(settings.get("phone", True))

    def redact(self, text: str) -> str:
        if self.email:
            text = EMAIL.sub("[email]", text)
        if self.phone:
            text = PHONE.sub(_phone, text)
        return text

    async def before_request(self, request: dict[str, Any], ctx: PluginContext) -> None:
        for message in request["messages"]:
            if message.get("role") not in self.roles:
                continue
            content = message.get("content")
            if isinstance(content, str):
                message["content"] = self.redact(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        part["text"] = self.redact(part["text"])


def _phone(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match.group(0))
    return "[phone]" if MIN_PHONE_DIGITS <= digits <= 15 else match.group(0)
