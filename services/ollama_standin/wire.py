"""Byte-level details of how ollama (a Go server) writes JSON and timestamps.

Clients parse what real ollama sends, so the stand-in copies Go's encoder: compact output,
raw UTF-8, and HTML-safe escapes of <, > and & (Go's json.Marshal default).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

# Go escapes these even inside strings; they can only occur inside strings in JSON text,
# so a plain replace on the encoded text is safe.
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_json(value: object, *, sort_keys: bool = False) -> str:
    """Encode like Go's json.Marshal (maps are sorted there, structs keep field order)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)
    for raw, escaped in _GO_ESCAPES.items():
        text = text.replace(raw, escaped)
    return text


def go_json_bytes(value: object, *, newline: bool = False) -> bytes:
    """json.Marshal output, or json.Encoder output (trailing newline) when newline is set."""
    return (go_json(value) + ("\n" if newline else "")).encode()


def rfc3339nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: fraction trimmed of trailing zeros, omitted when zero."""
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        stamp += "." + f"{frac:09d}".rstrip("0")
    return stamp + "Z"


def rfc3339_seconds(seconds: float) -> str:
    """A float unix time as RFC3339Nano (used for modified_at / expires_at)."""
    return rfc3339nano(round(seconds * 1_000_000_000))
