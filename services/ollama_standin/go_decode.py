"""Emulation of how the Go server decodes request bodies, down to its error strings.

Gin's ShouldBindJSON decodes one JSON value (trailing data ignored) into a typed struct;
a wrong JSON type is reported as `json: cannot unmarshal <kind> into Go struct field ...`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .chat_job import ApiError


def _json_kind(value: object, *, exact_number: bool = False) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return f"number {value}" if exact_number else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def decode_body(raw: bytes, *, empty_message: str, middleware: bool) -> object:
    """Decode like gin's ShouldBindJSON: one JSON value, trailing data ignored."""
    text = raw.decode("utf-8", errors="replace").lstrip()
    if not text:
        raise ApiError(400, empty_message, middleware=middleware)
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    try:
        value, _ = decoder.raw_decode(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, _go_syntax_error(exc), middleware=middleware) from None
    except ValueError as exc:  # NaN / Infinity, which Go rejects
        raise ApiError(
            400,
            f"invalid character '{str(exc)[0]}' looking for beginning of value",
            middleware=middleware,
        ) from None
    return value


# Python's decoder message -> the context phrase of Go's SyntaxError.
_GO_SYNTAX_CONTEXT = {
    "Expecting property name enclosed in double quotes": (
        "looking for beginning of object key string"
    ),
    "Expecting ':' delimiter": "after object key",
    "Expecting ',' delimiter": "after object key:value pair",
    "Invalid control character at": "in string literal",
}


def _go_syntax_error(exc: json.JSONDecodeError) -> str:
    if exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated"):
        return "unexpected EOF"
    char = exc.doc[exc.pos]
    quoted = "'\\''" if char == "'" else f"'{char}'"
    context = _GO_SYNTAX_CONTEXT.get(exc.msg, "looking for beginning of value")
    return f"invalid character {quoted} {context}"


class GoFields:
    """Type checks of one decoded object against its Go struct (json: cannot unmarshal ...)."""

    def __init__(self, body: dict[str, Any], path: str, *, middleware: bool) -> None:
        self.body = body
        self.path = path
        self.middleware = middleware

    def _fail(self, key: str, value: object, gotype: str, exact: bool = False) -> ApiError:
        kind = _json_kind(value, exact_number=exact)
        field_path = f"{self.path}.{key}"
        message = (
            f"json: cannot unmarshal {kind} into Go struct field {field_path} of type {gotype}"
        )
        return ApiError(400, message, middleware=self.middleware)

    def get(self, key: str) -> object:
        return self.body.get(key)  # JSON null leaves the Go zero value, like absence

    def string(self, key: str) -> str | None:
        value = self.get(key)
        if value is not None and not isinstance(value, str):
            raise self._fail(key, value, "string")
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.get(key)
        if value is not None and not isinstance(value, bool):
            raise self._fail(key, value, "bool")
        return value

    def integer(self, key: str) -> int | None:
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, value, "int")
        if isinstance(value, float):
            raise self._fail(key, value, "int", exact=True)
        return value

    def number(self, key: str) -> float | None:
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, value, "float64")
        return float(value)

    def array(self, key: str, gotype: str) -> list[Any] | None:
        value = self.get(key)
        if value is not None and not isinstance(value, list):
            raise self._fail(key, value, gotype)
        return value

    def obj(self, key: str, gotype: str) -> dict[str, Any] | None:
        value = self.get(key)
        if value is not None and not isinstance(value, dict):
            raise self._fail(key, value, gotype)
        return value

    def objects(self, key: str, gotype: str, elem: str) -> list[GoFields]:
        items = self.array(key, gotype) or []
        out = []
        for item in items:
            if not isinstance(item, dict):
                raise self._fail(key, item, elem)
            out.append(GoFields(item, f"{self.path}.{key}", middleware=self.middleware))
        return out


def top_object(value: object, gotype: str, *, middleware: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        kind = _json_kind(value)
        raise ApiError(
            400,
            f"json: cannot unmarshal {kind} into Go value of type {gotype}",
            middleware=middleware,
        )
    return value


def go_type_name(value: object) -> str:
    """fmt's %T of a decoded JSON value."""
    if value is None:
        return "<nil>"
    return {
        bool: "bool",
        int: "float64",
        float: "float64",
        str: "string",
        list: "[]interface {}",
    }.get(type(value), "map[string]interface {}")


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    match = re.fullmatch(r"([-+]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+", text)
    if text in ("0", "-0", "+0"):
        return 0.0
    if not match:
        raise ApiError(400, f'time: invalid duration "{text}"')
    total = sum(
        float(num) * _UNITS[unit]
        for num, unit in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    )
    return -total if text.startswith("-") else total
