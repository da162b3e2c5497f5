"""What the CLI prints: tables, JSON, errors, and the exit code of each kind of failure."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from clawgate.client.api import GatewayError, Unreachable
from clawgate.client.connection import NoToken

# Exit codes (README, "CLI"): scripts can tell failures apart without parsing text.
OK = 0
API_ERROR = 1  # any other error answer (e.g. 400 invalid_value, 409, 412)
USAGE = 2  # bad command line (argparse)
UNREACHABLE = 3  # gateway not running / not reachable
AUTH = 4  # no token, or the gateway refused it (401/403)
NOT_FOUND = 5  # unknown model, agent… (404)
UNAVAILABLE = 6  # retrying later may help: 429, 5xx (upstream down, busy, out of memory)


def exit_code(error: Exception) -> int:
    if isinstance(error, Unreachable):
        return UNREACHABLE
    if isinstance(error, NoToken):
        return AUTH
    if isinstance(error, GatewayError):
        if error.status in (401, 403):
            return AUTH
        if error.status == 404:
            return NOT_FOUND
        if error.status == 429 or error.status >= 500:
            return UNAVAILABLE
    return API_ERROR


def report(error: Exception, as_json: bool, out: TextIO = sys.stdout) -> int:
    """Print a failure (text on stderr; the API's error object on stdout with --json)."""
    if isinstance(error, GatewayError):
        detail = ", ".join(
            part
            for part in (
                f"code: {error.code}" if error.code else "",
                f"param: {error.param}" if error.param else "",
                f"HTTP {error.status}",
            )
            if part
        )
        print(f"clawgate: error: {error.message} ({detail})", file=sys.stderr)
        if as_json:
            print(json.dumps(error.body(), ensure_ascii=False), file=out)
    else:
        print(f"clawgate: error: {error}", file=sys.stderr)
    return exit_code(error)


def print_json(value: Any, out: TextIO = sys.stdout) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), file=out)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO = sys.stdout) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


def fields(record: dict[str, Any], out: TextIO = sys.stdout) -> None:
    """`key: value` lines, nested objects flattened (`config.temperature: 0.2`)."""

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{prefix}.{key}" if prefix else key)
        elif value not in ("", None, [], {}):
            print(f"{prefix}: {value}", file=out)

    walk(record, "")
