"""Server bootstrap shared by every service: one interceptor, health, reflection, drain.

`serve()` runs a grpc.aio server with
- the gateway interceptor: request id, bearer-token check, ApiError → status + OpenAI
  error metadata, unexpected exceptions → a logged 500 that hides internals, access log;
- standard grpc.health.v1 (SERVING for each registered service) and server reflection;
- graceful shutdown on SIGTERM/SIGINT: health turns NOT_SERVING, the server stops taking
  calls, in-flight calls get `grace_s` to finish, then cleanup hooks run.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from clawgate.common.auth import Authenticator, AuthResult, auth_error
from clawgate.common.errors import ApiError, abort, internal
from clawgate.common.logging import request_id
from clawgate.common.undecodable import UNDECODABLE, lenient, undecodable_error

log = logging.getLogger("clawgate.server")

Context = grpc.aio.ServicerContext[Any, Any]
Behavior = Callable[..., Any]
if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 32 * 1024 * 1024),
    ("grpc.max_send_message_length", 32 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
    # Accept every request Envoy lets through (gateway.maxRequestHeadersKb is at most 60 KB,
    # plus Envoy's own headers); grpc's default (8-16 KB) answered bigger ones with an
    # empty 429.
    ("grpc.max_metadata_size", 96 * 1024),
    ("grpc.absolute_max_metadata_size", 96 * 1024),
]


_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


def metadata_value(context: Context, key: str) -> str | None:
    """First value of a metadata key (lower-case), as text."""
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v.decode() if isinstance(v, bytes) else v
    return None


class GatewayInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Wraps every handler with request ids, authentication, error mapping and logging."""

    def __init__(self, auth: Authenticator, public_methods: Iterable[str] = ()) -> None:
        self._auth = auth
        self._public = frozenset(public_methods)

    def _is_public(self, method: str) -> bool:
        # grpc.health.v1 and reflection stay open: Envoy's health checks carry no token,
        # and neither is routed to the public port.
        return method in self._public or method.startswith("/grpc.")

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method: str = details.method  # type: ignore[attr-defined]
        public = self._is_public(method)
        if handler.request_streaming:
            return handler  # no client-streaming methods in our APIs
        inner = handler.unary_stream if handler.response_streaming else handler.unary_unary
        assert inner is not None
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, public, inner),
                request_deserializer=lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return grpc.unary_unary_rpc_method_handler(
            self._wrap_unary(method, public, inner),
            request_deserializer=lenient(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    async def _enter(self, method: str, public: bool, context: Context, request: Any) -> None:
        rid = metadata_value(context, "x-request-id") or ""
        if not _REQUEST_ID.fullmatch(rid):  # it goes into every log line: keep it tidy
            rid = uuid.uuid4().hex
        request_id.set(rid)
        if not public:
            result = self._auth.check_metadata(context.invocation_metadata() or ())
            if result is not AuthResult.OK:
                log.info("unauthenticated call", extra={"method": method, "reason": result.value})
                await abort(context, auth_error(result))
        if request is UNDECODABLE:  # after the token check: 401 comes first
            await abort(context, undecodable_error())

    def _wrap_unary(self, method: str, public: bool, inner: Behavior) -> Behavior:
        async def behavior(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            await self._enter(method, public, context, request)
            try:
                return await inner(request, context)
            except ApiError as err:
                await abort(context, err)
            except Exception as exc:
                await _fail(context, method, exc)
            finally:
                _access_log(method, context, started)

        return behavior

    def _wrap_stream(self, method: str, public: bool, inner: Behavior) -> Behavior:
        async def behavior(request: Any, context: Context) -> AsyncIterator[Any]:
            started = time.perf_counter()
            await self._enter(method, public, context, request)
            try:
                result = inner(request, context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        yield item
                else:
                    await result
            except ApiError as err:
                await abort(context, err)
            except Exception as exc:
                await _fail(context, method, exc)
            finally:
                _access_log(method, context, started)

        return behavior


async def _fail(context: Context, method: str, exc: Exception) -> None:
    if isinstance(exc, grpc.aio.AbortError | asyncio.CancelledError):
        raise exc
    log.exception("unhandled error", extra={"method": method})
    await abort(context, internal())


def _access_log(method: str, context: Context, started: float) -> None:
    code = context.code() if hasattr(context, "code") else None
    log.info(
        "call",
        extra={
            "method": method,
            "code": getattr(code, "name", "OK") if code is not None else "OK",
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )


async def serve(
    *,
    name: str,
    address: str,
    register: Callable[[grpc.aio.Server], Iterable[str]],
    auth: Authenticator,
    public_methods: Iterable[str] = (),
    grace_s: float = 10.0,
    on_stop: Sequence[Callable[[], Awaitable[None]]] = (),
) -> None:
    """Run one service until SIGTERM/SIGINT, then drain and clean up.

    `register` adds the service's servicers and returns their full names
    (e.g. `clawgate.chat.v1.ChatService`), which get health status and reflection.
    """
    server = grpc.aio.server(
        interceptors=[GatewayInterceptor(auth, public_methods)], options=SERVER_OPTIONS
    )
    service_names = list(register(server))
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)  # type: ignore[no-untyped-call]
    reflection.enable_server_reflection(
        [
            *service_names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"{name}: cannot listen on {address}")
    await server.start()
    for service in ["", *service_names]:
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving", extra={"address": address, "port": port, "services": service_names})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("shutting down", extra={"grace_s": grace_s})
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace_s)
    for hook in on_stop:
        try:
            await hook()
        except Exception:
            log.exception("cleanup failed")
    log.info("stopped")
