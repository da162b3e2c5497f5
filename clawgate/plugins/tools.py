"""Tools: typed Python functions the gateway runs for agents.

    @tool
    async def weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        '''Current weather in a city.'''
        ...

becomes a `Tool` named `weather` whose JSON Schema parameters come from the signature
(str, int, float, bool, list[...], dict, Literal[...], optional values with defaults) and
whose description is the docstring's first paragraph. Arguments are validated against the
schema before the function runs; what it returns (str, or anything JSON-serialisable) is
what the model sees. Raise `ToolError` to tell the model what went wrong.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, overload

ToolHandler = Callable[[dict[str, Any]], Awaitable[Any]]


class ToolError(Exception):
    """A tool failure whose message is shown to the model as the tool's result."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments object
    handler: ToolHandler = field(repr=False, compare=False)
    source: str = "plugin"  # plugin:<name>, mcp:<server> or builtin (set by the gateway)

    def definition(self) -> dict[str, Any]:
        """The OpenAI `tools[]` entry the model sees."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a `Tool` of a (sync or async) function with typed keyword parameters."""

    def make(func: Callable[..., Any]) -> Tool:
        schema = schema_of(func)
        doc = inspect.getdoc(func) or ""

        async def handler(arguments: dict[str, Any]) -> Any:
            result = func(**arguments)
            if inspect.isawaitable(result):
                result = await result
            return result

        return Tool(
            name=name or func.__name__,
            description=description or doc.split("\n\n")[0].replace("\n", " "),
            parameters=schema,
            handler=handler,
        )

    return make(fn) if fn is not None else make


def schema_of(func: Callable[..., Any]) -> dict[str, Any]:
    """The JSON Schema of a function's keyword arguments, from its type hints."""
    hints = typing.get_type_hints(func)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        properties[param.name] = _schema_of_type(hints.get(param.name, Any))
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


_SIMPLE: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema_of_type(hint: Any) -> dict[str, Any]:
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        inner = _schema_of_type(options[0]) if len(options) == 1 else {}
        return inner  # None only means "may be left out"; the default covers it
    if hint is list or origin is list:
        return {"type": "array", "items": _schema_of_type(args[0])} if args else {"type": "array"}
    if hint is dict or origin is dict:
        return {"type": "object"}
    return {}
