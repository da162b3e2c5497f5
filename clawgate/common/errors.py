"""One error type for every service, rendered as an OpenAI error and a gRPC status.

REST clients get `{"error": {"message", "type", "param", "code"}}` with the HTTP status:
the service puts both in trailing metadata (`x-error-json`, `x-http-status`) and Envoy's
Lua filter (deploy/envoy/openai_errors.lua) moves them into the HTTP response. gRPC
clients get the matching status code, the message, and `google.rpc.Status` details
(ErrorInfo with the code, RetryInfo when retrying can help).
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from clawgate.common.logging import request_id

ERROR_JSON_KEY = "x-error-json"
HTTP_STATUS_KEY = "x-http-status"
RETRY_AFTER_KEY = "retry-after"
REQUEST_ID_KEY = "x-request-id"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

_GRPC_BY_HTTP: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.ALREADY_EXISTS,
    412: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

_HTTP_BY_GRPC: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

_TYPE_BY_HTTP: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    412: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

RETRYABLE_HTTP = frozenset({408, 429, 500, 502, 503, 504})

# Error text travels three times in response headers (grpc-message, x-error-json, status
# details). Envoy resets the whole HTTP/2 connection to a service, neighbours' streams
# included, when response headers grow past its limit, so a client value must never make
# them large: messages quote client values through `quote`, and these caps bound the rest.
QUOTE_CHARS = 64
MESSAGE_MAX_CHARS = 1024
PARAM_MAX_CHARS = 128


def clip(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """A client value for an error message: quoted, and cut short (with its length) when
    long, so a 70 KB bad value gives a short message."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= limit:
        return f"'{text}'" if isinstance(value, str) else text
    shown = f"'{text[:limit]}…'" if isinstance(value, str) else f"{text[:limit]}…"
    return f"{shown} ({len(text)} characters)"


class ApiError(Exception):
    """An error a client should see, with everything both protocols need."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        grpc_code: grpc.StatusCode | None = None,
        retry_after: float | None = None,
    ) -> None:
        message = clip(message, MESSAGE_MAX_CHARS)
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _TYPE_BY_HTTP.get(status, "api_error")
        self.param = None if param is None else clip(param, PARAM_MAX_CHARS)
        self.code = code
        self.grpc_code = grpc_code or _GRPC_BY_HTTP.get(status, grpc.StatusCode.UNKNOWN)
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later (R16)."""
        return self.status in RETRYABLE_HTTP

    def body(self) -> dict[str, Any]:
        """The OpenAI error object."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def json(self) -> str:
        # ASCII-only: gRPC metadata values must be printable ASCII.
        return json.dumps(self.body(), ensure_ascii=True)

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        md: list[tuple[str, str | bytes]] = [
            (ERROR_JSON_KEY, self.json()),
            (HTTP_STATUS_KEY, str(self.status)),
            (STATUS_DETAILS_KEY, self._status_details()),
        ]
        if self.retry_after is not None:
            md.append((RETRY_AFTER_KEY, str(max(1, round(self.retry_after)))))
        rid = request_id.get()
        if rid:
            md.append((REQUEST_ID_KEY, rid))
        return tuple(md)

    def _status_details(self) -> bytes:
        info = error_details_pb2.ErrorInfo(
            reason=(self.code or self.type).upper(),
            domain="clawgate",
            metadata={"param": self.param} if self.param else {},
        )
        details = [_pack(info)]
        if self.retry_after is not None or self.retryable:
            delay = duration_pb2.Duration()
            delay.FromMilliseconds(int((self.retry_after or 0.5) * 1000))
            details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
        status = status_pb2.Status(
            code=self.grpc_code.value[0], message=self.message, details=details
        )
        data: bytes = status.SerializeToString()
        return data

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.message!r}, code={self.code!r})"


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def http_status_for(code: grpc.StatusCode) -> int:
    """HTTP status matching a gRPC status code (for errors relayed from other services)."""
    return _HTTP_BY_GRPC.get(code, 500)


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: ApiError) -> NoReturn:
    """End the call with `err`, readable by both gRPC and (through Envoy) REST clients."""
    await context.abort(err.grpc_code, err.message, trailing_metadata=err.trailing_metadata())
    raise AssertionError("unreachable")  # context.abort always raises


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """400 for bad client input, naming the parameter."""
    return ApiError(400, message, param=param, code=code or "invalid_value")


def not_found(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(404, message, param=param, code=code or "not_found")


def internal(message: str = "internal error; the gateway logs have details") -> ApiError:
    return ApiError(500, message, code="internal_error")
