"""Plugins for the end-to-end tests. Each misbehaves only when the last user message
holds its trigger word, so one stack serves every test (and every other request passes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from clawgate.plugins import Plugin, PluginContext, Tool, ToolError, tool


def _last_user_text(request: dict[str, Any]) -> str:
    for message in reversed(request["messages"]):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


class Raising(Plugin):
    async def before_request(self, request: dict[str, Any], ctx: PluginContext) -> None:
        if "trigger-raise" in _last_user_text(request):
            raise RuntimeError("the test plugin broke on purpose")


class RaisingSkipped(Plugin):
    async def before_request(self, request: dict[str, Any], ctx: PluginContext) -> None:
        if "trigger-skipped-raise" in _last_user_text(request):
            raise RuntimeError("the skipped test plugin broke on purpose")


class Hanging(Plugin):
    async def before_request(self, request: dict[str, Any], ctx: PluginContext) -> None:
        if "trigger-hang" in _last_user_text(request):
            await asyncio.Event().wait()  # never set: only the plugin timeout ends this


class Modifying(Plugin):
    """Rewrites a word of the user's message and pins the temperature."""

    async def before_request(self, request: dict[str, Any], ctx: PluginContext) -> dict[str, Any]:
        text = _last_user_text(request)
        if "trigger-invalid" in text:
            return {**request, "temperature": 7}  # out of range: the gateway refuses it
        if "trigger-modify" not in text:
            return request
        messages = [dict(m) for m in request["messages"]]
        for message in messages:
            if message.get("role") == "user" and message.get("content") == text:
                message["content"] = text.replace(self.settings["from"], self.settings["to"])
        return {**request, "messages": messages, "temperature": 0.0}

    async def on_chunk(self, chunk: dict[str, Any], ctx: PluginContext) -> dict[str, Any] | None:
        if ctx.requested_model.startswith("agent:"):
            return None
        return {**chunk, "x_test_modified": True}


class Tools(Plugin):
    def tools(self) -> Sequence[Tool]:
        @tool
        def shout(text: str) -> str:
            """Upper-case a text."""
            if not text.strip():
                raise ToolError("nothing to shout")
            return text.upper() + "!"

        async def repeat(arguments: dict[str, Any]) -> str:
            return "ran " * int(arguments["times"])

        # Hand-written schema that models (and the stand-in) easily violate.
        strict = Tool(
            name="repeat",
            description="Repeat a word many times.",
            parameters={
                "type": "object",
                "properties": {"times": {"type": "integer", "minimum": 100}},
                "required": ["times"],
            },
            handler=repeat,
        )
        return [shout, strict]
