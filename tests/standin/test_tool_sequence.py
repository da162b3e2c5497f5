"""The stand-in as a model that works through tools: it calls each tool the user's last
message names, one per turn in the order they are mentioned, then answers quoting the
tool results (what the gateway's tool loop is tested against)."""

from __future__ import annotations

from typing import Any

from tests.standin.conftest import Standin


def _tool(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
        },
    }


TOOLS = [_tool("lookup"), _tool("spell")]


def _answered(body: dict[str, Any], result: str) -> list[dict[str, Any]]:
    """The model's tool call and the client's result for it."""
    (call,) = body["choices"][0]["message"]["tool_calls"]
    return [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": result},
    ]


async def test_tools_are_called_in_turn_then_the_answer_uses_their_results(
    standin: Standin,
) -> None:
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "Please spell then lookup the word Ocean"}
    ]
    _, first = await standin.v1({"model": "llama3.2", "messages": history, "tools": TOOLS})
    assert first["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "spell"
    history += _answered(first, "O-c-e-a-n")
    _, second = await standin.v1({"model": "llama3.2", "messages": history, "tools": TOOLS})
    assert second["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "lookup"
    history += _answered(second, "a large sea")
    _, third = await standin.v1({"model": "llama3.2", "messages": history, "tools": TOOLS})
    assert third["choices"][0]["finish_reason"] == "stop"
    content = third["choices"][0]["message"]["content"]
    assert content.startswith("About Please spell then lookup the word:")
    assert "spell: O-c-e-a-n" in content and "lookup: a large sea" in content
