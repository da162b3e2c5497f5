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
import importlib
import inspect
import logging
import os
import pkgutil
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from clawgate.common import metrics
from clawgate.common.auth import (
    Authenticator,
    AuthResult,
    auth_error,
    bearer_token,
    permission_error,
)
from clawgate.common.auth_throttle import FailedAuthLimiter, client_address, too_many_failures
from clawgate.common.errors import REQUEST_ID_KEY, ApiError, abort, internal
from clawgate.common.logging import request_id
from clawgate.common.method_scopes import scope_for
from clawgate.common.services import BY_NAME, SERVICES, grpc_service_names
from clawgate.common.tokens import current_principal
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
    """Wraps every handler with request ids, authentication, scopes, error mapping and
    logging. Every handler shape is wrapped; one it does not know is refused."""

    def __init__(
        self,
        auth: Authenticator,
        public_methods: Iterable[str] = (),
        throttle: FailedAuthLimiter | None = None,
    ) -> None:
        self._auth = auth
        self._public = frozenset(public_methods)
        self._throttle = throttle

    def _is_public(self, method: str) -> bool:
        # grpc.health.v1 stays open: Envoy's health checks carry no token (and it is not
        # routed to the public port). Reflection is routed there, so it needs the token.
        return method in self._public or method.startswith("/grpc.health.v1.")

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
        shape = (bool(handler.request_streaming), bool(handler.response_streaming))
        attribute, factory = _SHAPES[shape]
        inner = getattr(handler, attribute, None)
        if inner is None:
            log.error("refusing a handler of unknown shape", extra={"method": method})
            inner, public = _refuse, True  # nothing of the method runs, so no token needed
        wrap = self._wrap_stream if shape[1] else self._wrap_unary
        deserializer = handler.request_deserializer
        if not shape[0]:  # undecodable bytes wait for the token check (see _enter)
            deserializer = lenient(deserializer)
        return factory(  # type: ignore[no-any-return]
            wrap(method, public, inner),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )

    async def _enter(self, method: str, public: bool, context: Context, request: Any) -> None:
        rid = metadata_value(context, REQUEST_ID_KEY) or ""
        if not _REQUEST_ID.fullmatch(rid):  # it goes into every log line: keep it tidy
            rid = uuid.uuid4().hex
        request_id.set(rid)
        current_principal.set(None)
        # gRPC callers get it back in the trailers (abort() adds it to error trailers too).
        context.set_trailing_metadata(((REQUEST_ID_KEY, rid),))
        if not public:
            await self._authenticate(method, context)
        if request is UNDECODABLE:  # after the token check: 401 comes first
            await abort(context, undecodable_error())

    async def _authenticate(self, method: str, context: Context) -> None:
        metadata = [
            (k, v.decode() if isinstance(v, bytes) else v)
            for k, v in context.invocation_metadata() or ()
        ]
        address = client_address(metadata, context.peer() or "")
        if self._throttle is not None:
            wait = await self._throttle.retry_after(address)
            if wait is not None:
                log.info("failed-auth limit", extra={"method": method})
                await abort(context, too_many_failures(wait))
        result = self._auth.authenticate(bearer_token(metadata))
        if isinstance(result, AuthResult):
            log.info("unauthenticated call", extra={"method": method, "reason": result.value})
            if self._throttle is not None and result is AuthResult.MISMATCH:
                await self._throttle.record_failure(address)
            await abort(context, auth_error(result))
        scope = scope_for(method)
        if not result.allows(scope):
            log.info(
                "permission denied",
                extra={"method": method, "token_name": result.name, "scope": scope},
            )
            await abort(context, permission_error(method, scope, result))
        current_principal.set(result)

    def _wrap_unary(self, method: str, public: bool, inner: Behavior) -> Behavior:
        # `request` is the message, or the request iterator of a client-streaming call.
        async def behavior(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            try:
                await self._enter(method, public, context, request)
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
            try:
                await self._enter(method, public, context, request)
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


async def _refuse(request: Any, context: Context) -> Any:
    raise ApiError(
        501, "this method cannot be served (unsupported handler)", code="unsupported_method"
    )


# (request streaming, response streaming) → handler attribute, handler factory
_SHAPES: dict[tuple[bool, bool], tuple[str, Callable[..., Any]]] = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


async def _fail(context: Context, method: str, exc: Exception) -> None:
    if isinstance(exc, grpc.aio.AbortError | asyncio.CancelledError):
        raise exc
    log.exception("unhandled error", extra={"method": method})
    await abort(context, internal())


def _access_log(method: str, context: Context, started: float) -> None:
    code = context.code() if hasattr(context, "code") else None
    name = getattr(code, "name", "OK") if code is not None else "OK"
    seconds = time.perf_counter() - started
    metrics.observe_call(method, name, seconds)
    if log.isEnabledFor(logging.INFO):
        log.info(
            "call", extra={"method": method, "code": name, "duration_ms": round(seconds * 1000, 2)}
        )


def _whole_api() -> list[str]:
    """Every public gRPC service, with its generated modules loaded into the default
    descriptor pool (reflection reads it) so that one reflection endpoint covers them all."""
    for folder in sorted({d for s in SERVICES for d in s.generated_dirs}):
        package = importlib.import_module(folder.replace("/", "."))
        for module in pkgutil.iter_modules(package.__path__):
            if module.name.endswith("_pb2"):
                importlib.import_module(f"{package.__name__}.{module.name}")
    return grpc_service_names()


# Internal, not routed by Envoy (its routes name the public services): the health service
# gathers every service's metrics through it for the gateway's GET /metrics.
SCRAPE_SERVICE = "clawgate.internal.v1.Metrics"
SCRAPE_METHOD = f"/{SCRAPE_SERVICE}/Scrape"


def _scrape_handler() -> grpc.GenericRpcHandler[bytes, bytes]:
    async def scrape(request: bytes, context: Context) -> bytes:
        return metrics.exposition()

    handler = grpc.unary_unary_rpc_method_handler(scrape)  # raw bytes in and out
    return grpc.method_handlers_generic_handler(SCRAPE_SERVICE, {"Scrape": handler})


@dataclass
class RunningServer:
    server: grpc.aio.Server
    health: Any  # grpc_health's aio HealthServicer
    port: int


async def start_server(
    *,
    name: str,
    address: str,
    register: Callable[[grpc.aio.Server], Iterable[str]],
    auth: Authenticator,
    public_methods: Iterable[str] = (),
    throttle: FailedAuthLimiter | None = None,
) -> RunningServer:
    """Build and start a server with the gateway interceptor, health and reflection.

    `register` adds the service's servicers and returns their full names
    (e.g. `clawgate.chat.v1.ChatService`), which get health status and reflection.
    """
    metrics.start(name, os.environ.get("CLAWGATE_METRICS_ADDR"))
    server = grpc.aio.server(
        interceptors=[GatewayInterceptor(auth, [*public_methods, SCRAPE_METHOD], throttle)],
        options=SERVER_OPTIONS,
    )
    server.add_generic_rpc_handlers([_scrape_handler()])
    service_names = list(register(server))
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)  # type: ignore[no-untyped-call]
    definition = BY_NAME.get(name)
    reflected = _whole_api() if definition and definition.reflects_all else service_names
    reflection.enable_server_reflection(
        [
            *reflected,
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
    return RunningServer(server, health_servicer, port)


async def serve(
    *,
    name: str,
    address: str,
    register: Callable[[grpc.aio.Server], Iterable[str]],
    auth: Authenticator,
    public_methods: Iterable[str] = (),
    throttle: FailedAuthLimiter | None = None,
    grace_s: float = 10.0,
    on_stop: Sequence[Callable[[], Awaitable[None]]] = (),
) -> None:
    """Run one service (see start_server) until SIGTERM/SIGINT, then drain and clean up."""
    running = await start_server(
        name=name,
        address=address,
        register=register,
        auth=auth,
        public_methods=public_methods,
        throttle=throttle,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("shutting down", extra={"grace_s": grace_s})
    await running.health.enter_graceful_shutdown()
    await running.server.stop(grace_s)
    hooks = [*on_stop, throttle.close] if throttle is not None else on_stop
    for hook in hooks:
        try:
            await hook()
        except Exception:
            log.exception("cleanup failed")
    log.info("stopped")
