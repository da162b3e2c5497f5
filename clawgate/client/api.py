"""A small blocking client of the REST API (stdlib only: the CLI starts fast, needs nothing).

Errors come back as `GatewayError` with the API's own OpenAI-shaped fields; a gateway that
does not answer is `Unreachable`. Answers worth retrying (429, 502–504) are retried with
exponential backoff (`0.5 * 2**attempt`, or the server's `Retry-After`), which is safe:
reads are idempotent, chat has no side effect, and creating sends an `Idempotency-Key`.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from http.client import HTTPResponse
from typing import Any

from clawgate.client.connection import Connection

API = "/api/v1"
RETRYABLE = frozenset({429, 502, 503, 504})


class Unreachable(Exception):
    """Nothing answers at the gateway's URL (connection refused, DNS, timeout)."""


class GatewayError(Exception):
    """An error answer of the API: `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type
        self.param = param

    @classmethod
    def from_body(cls, status: int, raw: bytes) -> GatewayError:
        try:
            error = json.loads(raw)["error"]
            return cls(
                status,
                str(error.get("message") or "error"),
                error.get("code"),
                error.get("type"),
                error.get("param"),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            text = raw.decode("utf-8", "replace").strip() or f"HTTP {status}"
            return cls(status, text[:500])

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}  # fmt: skip


def no_proxy_opener() -> urllib.request.OpenerDirector:
    # The gateway is local or named explicitly: a proxy from the environment would only
    # get in the way (and could see the token).
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Client:
    def __init__(
        self,
        connection: Connection,
        timeout: float = 30.0,
        retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connection = connection
        self.timeout = timeout
        self.retries = retries
        self._sleep = sleep
        self._opener = no_proxy_opener()

    def _open(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        payload: tuple[bytes, str] | None = None,
    ) -> HTTPResponse:
        """`body` is sent as JSON; `payload` (bytes, content type) as it is."""
        url = self.connection.url + API + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v})
        data, content_type = payload or (None, "")
        if body is not None:
            data, content_type = json.dumps(body).encode(), "application/json"
        all_headers = {
            "Authorization": f"Bearer {self.connection.token}",
            "Accept": "application/json",
            "User-Agent": "clawgate-cli",
            **({"Content-Type": content_type} if data is not None else {}),
            **(headers or {}),
        }
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=data, headers=all_headers, method=method)
            try:
                reply: HTTPResponse = self._opener.open(request, timeout=self.timeout)
                return reply
            except urllib.error.HTTPError as err:
                raw = err.read()
                if err.code in RETRYABLE and attempt < self.retries:
                    self._sleep(_backoff(attempt, err.headers.get("Retry-After")))
                    continue
                raise GatewayError.from_body(err.code, raw) from None
            except (TimeoutError, urllib.error.URLError, OSError) as err:
                reason = getattr(err, "reason", err)
                raise Unreachable(
                    f"cannot reach the gateway at {self.connection.url} ({reason}): is it "
                    "running? Start it with `clawgate onboard`, or pass --url"
                ) from None
        raise AssertionError("unreachable")  # the loop returns or raises

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Any:
        """One request; the decoded JSON answer."""
        with self._open(method, path, body, headers, query) as reply:
            return json.loads(reply.read() or b"{}")

    def upload(self, path: str, data: bytes, content_type: str) -> Any:
        """POST a raw body (a multipart form); the decoded JSON answer."""
        with self._open("POST", path, payload=(data, content_type)) as reply:
            return json.loads(reply.read() or b"{}")

    def download(self, path: str) -> bytes:
        """GET a raw answer (a file's content)."""
        with self._open("GET", path) as reply:
            return reply.read()

    def stream(
        self, path: str, body: Any, headers: Mapping[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """POST and yield each `data:` frame of a Server-Sent Events answer until `[DONE]`.
        An error frame (a failure after the stream started) raises GatewayError."""
        with self._open(
            "POST", path, body, {"Accept": "text/event-stream", **(headers or {})}
        ) as reply:
            for raw in reply:
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                frame = json.loads(data)
                if "error" in frame:
                    # The stream had started (HTTP 200): the upstream failed midway.
                    raise GatewayError.from_body(502, data.encode())
                yield frame
        raise GatewayError(502, "the answer stream ended without [DONE]", "stream_truncated")


def _backoff(attempt: int, retry_after: str | None) -> float:
    try:
        if retry_after is not None:
            return min(float(retry_after), 30.0)
    except ValueError:
        pass
    return float(0.5 * 2**attempt)
