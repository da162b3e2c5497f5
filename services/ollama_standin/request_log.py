"""A log of chat requests, so gateway tests can see exactly what reached "ollama"."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Literal

from aiohttp import web

Status = Literal["running", "completed", "cancelled", "error"]
# Credentials are recorded as present, never stored.
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie"}
)
REDACTED = "[redacted]"


@dataclass
class RequestRecord:
    id: int
    method: str
    path: str
    body: Any  # parsed JSON, or None when the body was not JSON
    headers: dict[str, str]
    started_at: float
    first_byte_at: float | None = None
    finished_at: float | None = None
    status: Status = "running"
    http_status: int | None = None
    chunks_sent: int = 0
    fail: str | None = None  # the failure switch applied to this request, if any
    error: str | None = None

    def mark_first_byte(self) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = time.time()

    def finish(
        self, status: Status, *, http_status: int | None = None, error: str | None = None
    ) -> None:
        if self.finished_at is not None:
            return  # the first outcome wins (a late write error after completion is noise)
        self.finished_at = time.time()
        self.status = status
        if http_status is not None:
            self.http_status = http_status
        if error is not None:
            self.error = error

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def loggable_headers(request: web.BaseRequest) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        shown = REDACTED if key in _SECRET_HEADERS else value
        headers[key] = f"{headers[key]}, {shown}" if key in headers and shown != REDACTED else shown
    return headers


class RequestLog:
    def __init__(self, limit: int) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=limit)
        self._next_id = 1  # never reset, so ids stay unique across clears

    def resize(self, limit: int) -> None:
        if limit != self._records.maxlen:
            self._records = deque(self._records, maxlen=limit)

    def start(self, request: web.BaseRequest, body: Any) -> RequestRecord:
        record = RequestRecord(
            id=self._next_id,
            method=request.method,
            path=request.path,
            body=body,
            headers=loggable_headers(request),
            started_at=time.time(),
        )
        self._next_id += 1
        self._records.append(record)
        return record

    def get(self, record_id: int) -> RequestRecord | None:
        return next((r for r in self._records if r.id == record_id), None)

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self._records]

    def clear(self) -> None:
        self._records.clear()
