"""A raw HTTP/1.1 client for fuzzing: sends exactly the bytes it is given (paths with
any percent-escape, odd headers, any body) and reads the reply with a deadline."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass

# A reply slower than this is a hang (the stand-in answers a fuzz request in well under 1 s).
REQUEST_TIMEOUT_S = 20.0
# 5xx a client may legitimately see: a worker busy or unreachable, a deadline; always with
# an OpenAI-shaped body.
DELIBERATE_5XX = frozenset({503, 504})


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def send(
    port: int,
    method: str,
    path: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes | None = None,
) -> Reply:
    """One request on a fresh connection; raises TimeoutError when the gateway hangs."""
    lines = [method.encode() + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1",
             b"Connection: close"]  # fmt: skip
    lines += [name + b": " + value for name, value in headers]
    if body is not None:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    raw = b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")
    with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT_S) as sock:
        sock.sendall(raw)
        reply = http.client.HTTPResponse(sock, method=method)
        reply.begin()
        data = reply.read()
        return Reply(reply.status, {k.lower(): v for k, v in reply.getheaders()}, data)


def violations(reply: Reply) -> list[str]:
    """What is wrong with a reply under the fuzzing rule (empty: nothing)."""
    problems: list[str] = []
    if reply.status >= 500 and reply.status not in DELIBERATE_5XX:
        problems.append(f"server error {reply.status}")
    if reply.status >= 400:
        problems += _error_shape(reply)
    elif reply.headers.get("content-type", "").startswith("text/event-stream"):
        text = reply.body.rstrip()
        if not (text.endswith(b"data: [DONE]") or b'"error"' in text[-2000:]):
            problems.append("stream ended without [DONE] or an error event")
    return problems


def _error_shape(reply: Reply) -> list[str]:
    if not reply.headers.get("content-type", "").startswith("application/json"):
        return [f"error body is {reply.headers.get('content-type')!r}, not JSON"]
    try:
        parsed = json.loads(reply.body)
    except ValueError:
        return ["error body is not valid JSON"]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict) or set(error) != {"message", "type", "param", "code"}:
        return ["error body is not OpenAI-shaped"]
    if not isinstance(error["message"], str) or not error["message"]:
        return ["error message is empty"]
    if len(error["message"]) > 1100:
        return [f"error message is {len(error['message'])} characters long"]
    return []
