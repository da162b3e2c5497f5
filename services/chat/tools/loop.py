"""The tool loop: when the model calls gateway tools, run them, append the results and
ask again, up to `tools.maxSteps` model calls; then the final answer.

Intermediate steps reach stream clients as ordinary chunks with an empty delta and an
extra `clawgate_step` object ({type: tool_call|tool_result, id, name, arguments|result}),
so plain OpenAI clients still parse every chunk; JSON answers list them in
`clawgate_steps`. Calls of tools the client defined itself are handed back to the client
as usual (the gateway never runs those); when the model mixes both kinds in one turn,
only the client's calls are returned.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from services.chat.openai_format import ChunkEncoder
from services.chat.pipeline import Exchange
from services.chat.providers.base import Delta, Usage
from services.chat.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from clawgate.plugins import Tool
    from services.chat.plugin_host import PluginSession

log = logging.getLogger("clawgate.tools")

STEP_KEY = "clawgate_step"


@dataclass
class StepDelta(Delta):
    """Not model output: a step the gateway ran (rendered by `encode`)."""

    step: dict[str, Any] = field(default_factory=dict)


def encode(encoder: ChunkEncoder, delta: Delta) -> list[dict[str, Any]]:
    """Chunks for one delta; step deltas become an empty-delta chunk carrying the step."""
    if isinstance(delta, StepDelta):
        return [
            {
                "id": encoder.id,
                "object": "chat.completion.chunk",
                "created": encoder.created,
                "model": encoder.model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": None}],
                STEP_KEY: delta.step,
            }
        ]
    return encoder.encode(delta)


class ExtendedExchange(Exchange):
    """An exchange with the plugins' hooks and, for agents with tools, the tool loop."""

    def __init__(
        self,
        *args: Any,
        plugins: PluginSession | None,
        registry: ToolRegistry,
        gateway_tools: list[Tool],
        max_steps: int,
    ) -> None:
        super().__init__(*args)
        self.plugins = plugins
        self.registry = registry
        self.gateway_tools = {t.name: t for t in gateway_tools}
        self.max_steps = max_steps

    async def deltas(self, *, buffered: bool = False) -> AsyncGenerator[Delta, None]:
        inner = (
            self._tool_loop(buffered) if self.gateway_tools else super().deltas(buffered=buffered)
        )
        async with aclosing(inner) as deltas:
            async for delta in deltas:
                yield delta
        if self.plugins is not None and self.completion is not None:
            self.completion = await self.plugins.after_response(self.request.body, self.completion)

    async def on_chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        return await self.plugins.on_chunk(chunk) if self.plugins is not None else chunk

    async def _tool_loop(self, buffered: bool) -> AsyncGenerator[Delta, None]:
        body = self.request.body
        steps: list[dict[str, Any]] = []
        usage = Usage(0, 0)
        for step in range(self.max_steps):
            last = step == self.max_steps - 1
            if last:
                _withdraw_tools(body, self.gateway_tools)  # the last call must answer
            async with aclosing(super().deltas(buffered=buffered)) as deltas:
                async for delta in deltas:
                    # Tool calls, the finish and usage are decided after the whole turn.
                    if delta.content or delta.reasoning or delta.logprobs:
                        yield Delta(
                            content=delta.content,
                            reasoning=delta.reasoning,
                            logprobs=delta.logprobs,
                            extra=delta.extra,
                        )
            assert self.completion is not None
            usage = _add(usage, self.completion.get("usage") or {})
            choice = self.completion["choices"][0]
            calls: list[dict[str, Any]] = choice["message"].get("tool_calls") or []
            ours = [c for c in calls if c["function"]["name"] in self.gateway_tools]
            for call in ours:  # results must answer a call id, even if the server gave none
                call["id"] = call["id"] or f"call_{secrets.token_hex(4)}"
            if not ours or len(ours) < len(calls) or last:
                _keep_client_calls(choice, [c for c in calls if c not in ours])
                for i, call in enumerate(choice["message"].get("tool_calls") or ()):
                    yield Delta(tool_calls=[{"index": i, **call}])
                break
            body["messages"].append(
                {"role": "assistant", "content": choice["message"].get("content") or "",
                 "tool_calls": ours}
            )  # fmt: skip
            for call in ours:
                async with aclosing(self._run(call, steps)) as events:
                    async for event in events:
                        yield event
        assert self.completion is not None
        yield Delta(finish_reason=self.completion["choices"][0]["finish_reason"])
        yield Delta(usage=usage)
        self.completion["usage"] = usage.to_json()
        if steps:
            self.completion["clawgate_steps"] = steps

    async def _run(
        self, call: dict[str, Any], steps: list[dict[str, Any]]
    ) -> AsyncGenerator[StepDelta, None]:
        """One gateway tool call: the call event, the run, the result event and message."""
        name, arguments = call["function"]["name"], call["function"]["arguments"]
        requested = {"type": "tool_call", "id": call["id"], "name": name, "arguments": arguments}
        steps.append(requested)
        yield StepDelta(step=requested)
        result = await self.registry.run(self.gateway_tools[name], arguments)
        answered = {
            "type": "tool_result",
            "id": call["id"],
            "name": name,
            "result": result.text,
            "error": not result.ok,
        }
        steps.append(answered)
        yield StepDelta(step=answered)
        self.request.body["messages"].append(
            {"role": "tool", "tool_call_id": call["id"], "content": result.text}
        )


def _keep_client_calls(choice: dict[str, Any], theirs: list[dict[str, Any]]) -> None:
    """The final turn hands back only the client's own tool calls (with fresh indexes)."""
    message = choice["message"]
    if len(theirs) == len(message.get("tool_calls") or ()):
        return
    log.info("gateway tool calls of the final turn dropped", extra={"kept": len(theirs)})
    if theirs:
        message["tool_calls"] = theirs
        return
    message.pop("tool_calls", None)
    message["content"] = message.get("content") or ""
    choice["finish_reason"] = "stop"


def _withdraw_tools(body: dict[str, Any], gateway_tools: dict[str, Tool]) -> None:
    remaining = [t for t in body.get("tools", ()) if t["function"]["name"] not in gateway_tools]
    if remaining:
        body["tools"] = remaining
    else:
        body.pop("tools", None)
        body.pop("tool_choice", None)
        body.pop("parallel_tool_calls", None)


def _add(total: Usage, usage: dict[str, Any]) -> Usage:
    return Usage(
        total.prompt_tokens + int(usage.get("prompt_tokens") or 0),
        total.completion_tokens + int(usage.get("completion_tokens") or 0),
    )
