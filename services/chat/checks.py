"""Scalar checks with OpenAI-worded 400s that name the parameter."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from clawgate.common.errors import ApiError, invalid, quote


def number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise wrong_type(name, "a decimal", value)
    if value < low:
        raise invalid(
            f"Invalid '{name}': decimal below minimum value. "
            f"Expected a value >= {low:g}, but got {value:g} instead.",
            name,
            "decimal_below_min_value",
        )
    if value > high:
        raise invalid(
            f"Invalid '{name}': decimal above maximum value. "
            f"Expected a value <= {high:g}, but got {value:g} instead.",
            name,
            "decimal_above_max_value",
        )
    return float(value)


def integer(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(name, "an integer", value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise invalid(
            f"Invalid '{name}': expected an integer between {low} and {high}, got {value}.",
            name,
        )
    return value


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise wrong_type(name, "a boolean", value)
    return value


def wrong_type(name: str, expected: str, value: Any) -> ApiError:
    return invalid(
        f"Invalid type for '{name}': expected {expected}, but got {type_name(value)} instead.",
        name,
        "invalid_type",
    )


def not_one_of(name: str, value: Any, supported: Iterable[str]) -> ApiError:
    """400 for a value outside a closed set, listing the accepted ones."""
    choices = ", ".join(f"'{v}'" for v in supported)
    return invalid(
        f"Invalid value for '{name}': {quote(value)}. Supported values are: {choices}.",
        name,
    )


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
