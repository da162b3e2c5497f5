"""One upstream HTTP call: connect errors, error statuses and early close, done once.

Closing matters: when the client goes away the task is cancelled, and the response must
be *closed* (not returned to the pool) so the worker sees the disconnect and stops
generating on the GPU.

Whatever a worker sends is bounded and checked here (`read_line_batches`): one line, the whole
body, invalid HTTP or chunked encoding. A worker that misbehaves fails with an
UpstreamFailure (so the pipeline fails over), never with an aiohttp exception.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

from services.chat.openai_format import dumps
from services.chat.providers.base import (
    DEFAULT_LIMITS,
    AnswerLimitReached,
    ReadLimits,
    UpstreamBadResponse,
    UpstreamCut,
    UpstreamHttpError,
    UpstreamUnreachable,
    public_url,
)

ERROR_BODY_LIMIT = 64 * 1024
# Errors raised while reading an answer that had started: the worker went away mid-answer.
READ_ERRORS = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError)


@asynccontextmanager
async def open_stream(
    session: aiohttp.ClientSession,
    worker: str,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    limits: ReadLimits = DEFAULT_LIMITS,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """POST `body` and yield the 200 response; anything else becomes an UpstreamFailure."""
    data = dumps(body)
    try:
        response = await session.post(url, data=data, headers=headers)
    except (aiohttp.ClientResponseError, HttpProcessingError) as exc:
        # Connected, but what came back is not HTTP (or not HTTP aiohttp can read).
        raise UpstreamBadResponse(worker, f"invalid HTTP response ({_reason(exc)})") from exc
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise UpstreamUnreachable(worker, describe_connect_error(exc)) from exc
    try:
        if response.status != 200:
            raise await http_error(worker, response)
        if limits.on_accept is not None:
            limits.on_accept()
        yield response
    except BaseException:
        response.close()  # drop the connection so the worker stops generating
        raise
    finally:
        response.release()


async def read_line_batches(
    worker: str, response: aiohttp.ClientResponse, limits: ReadLimits
) -> AsyncIterator[list[bytes]]:
    """The body's lines (without their newline), in batches: every complete line that came
    with one network read. One await per read, not per line: a worker that sends faster
    than the gateway reads costs one pass through the pipeline per batch, not per token.

    Each line is at most `max_line_bytes`; AnswerLimitReached after `max_total_bytes`.
    Read errors become UpstreamFailures."""
    total = 0
    pending = bytearray()  # an incomplete last line
    try:
        while True:
            chunk = await response.content.readany()
            if not chunk:
                if pending:
                    yield [bytes(pending)]  # the last line had no newline
                return
            total += len(chunk)
            if total > limits.max_total_bytes:
                raise AnswerLimitReached(f"more than {limits.max_total_bytes} bytes")
            pending += chunk
            end = pending.rfind(b"\n")
            if end < 0:
                if len(pending) > limits.max_line_bytes:
                    raise _line_too_long(worker, limits)
                continue
            complete = bytes(pending[:end])
            del pending[: end + 1]
            lines = complete.split(b"\n")
            if len(pending) > limits.max_line_bytes or (
                len(complete) > limits.max_line_bytes
                and any(len(line) > limits.max_line_bytes for line in lines)
            ):
                raise _line_too_long(worker, limits)
            yield lines
    except HttpProcessingError as exc:  # parser errors in the body
        raise UpstreamBadResponse(worker, f"an unreadable answer ({_reason(exc)})") from exc
    except aiohttp.ClientPayloadError as exc:  # e.g. broken chunked transfer encoding
        message = f"the answer's encoding is broken ({_reason(exc)})"
        raise UpstreamBadResponse(worker, message) from exc
    except READ_ERRORS as exc:
        raise cut(worker, exc) from exc


def _line_too_long(worker: str, limits: ReadLimits) -> UpstreamBadResponse:
    return UpstreamBadResponse(worker, f"a line longer than {limits.max_line_bytes} bytes")


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


async def get_json(
    session: aiohttp.ClientSession, worker: str, url: str, headers: dict[str, str]
) -> Any:
    """GET a small JSON document (probes); failures raise like open_stream's, and a body
    that is not JSON as an UpstreamHttpError with status 200."""
    try:
        async with session.get(url, headers=headers) as response:
            if response.status != 200:
                raise await http_error(worker, response)
            try:
                return await response.json(content_type=None)
            except ValueError as exc:
                message = f"GET {public_url(url)} did not answer JSON"
                raise UpstreamHttpError(worker, 200, message) from exc
    except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
        raise UpstreamUnreachable(worker, describe_connect_error(exc)) from exc


def describe_connect_error(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "connection timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or str(exc.os_error)
        return f"connection failed ({reason.lower()})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    return f"connection failed ({type(exc).__name__})"


async def http_error(worker: str, response: aiohttp.ClientResponse) -> UpstreamHttpError:
    """The worker's error status and message (OpenAI or native ollama error body)."""
    try:
        raw = await response.content.read(ERROR_BODY_LIMIT)
    except READ_ERRORS:
        raw = b""
    text = raw.decode("utf-8", errors="replace").strip()
    message = text
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"]
        elif isinstance(error, str):
            message = error
    return UpstreamHttpError(
        worker,
        response.status,
        message or response.reason or f"HTTP {response.status}",
        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
    )


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from model servers, ignore


def cut(worker: str, exc: BaseException) -> UpstreamCut:
    return UpstreamCut(worker, f"the connection broke during the answer ({type(exc).__name__})")
