"""The gateway interceptor fails closed for every handler shape.

A test-only service with all four shapes (unary-unary, unary-stream, stream-unary,
stream-stream) is registered through `start_server`, the same bootstrap and interceptor
every Clawgate service runs with; it is not part of the public protos. Its methods are not
in the scope table, so they need an admin token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf import wrappers_pb2

from clawgate.common.auth import Authenticator
from clawgate.common.auth_throttle import FailedAuthLimiter
from clawgate.common.server import RunningServer, start_server
from clawgate.common.tokens import ADMIN, CHAT, TokenSpec, current_principal
from clawgate.launcher.processes import free_port

SERVICE = "clawgate.testonly.v1.ShapesService"
ADMIN_TOKEN, CHAT_TOKEN = "cg-shapes-admin", "cg-shapes-chat"
Text = wrappers_pb2.StringValue
CODEC = (Text.SerializeToString, Text.FromString)  # client side: serializer, deserializer


def caller() -> str:
    principal = current_principal.get()
    return principal.name if principal else "nobody"


async def unary_unary(request: Text, context: Any) -> Text:
    return Text(value=f"{caller()}:{request.value}")


async def unary_stream(request: Text, context: Any) -> AsyncIterator[Text]:
    for part in request.value.split():
        yield Text(value=f"{caller()}:{part}")


async def stream_unary(requests: AsyncIterator[Text], context: Any) -> Text:
    parts = [r.value async for r in requests]
    return Text(value=f"{caller()}:{'+'.join(parts)}")


async def stream_stream(requests: AsyncIterator[Text], context: Any) -> AsyncIterator[Text]:
    async for r in requests:
        yield Text(value=f"{caller()}:{r.value}")


def _register(server: grpc.aio.Server) -> list[str]:
    codec: dict[str, Any] = {
        "request_deserializer": Text.FromString,
        "response_serializer": Text.SerializeToString,
    }
    handlers = {
        "UnaryUnary": grpc.unary_unary_rpc_method_handler(unary_unary, **codec),
        "UnaryStream": grpc.unary_stream_rpc_method_handler(unary_stream, **codec),
        "StreamUnary": grpc.stream_unary_rpc_method_handler(stream_unary, **codec),
        "StreamStream": grpc.stream_stream_rpc_method_handler(stream_stream, **codec),
        # A handler without a behaviour for its shape: refused, never passed through.
        "Shapeless": grpc.stream_unary_rpc_method_handler(cast(Any, None), **codec),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    return [SERVICE]


@pytest.fixture(scope="module")
async def shapes() -> AsyncIterator[grpc.aio.Channel]:
    auth = Authenticator(
        [TokenSpec("root", ADMIN_TOKEN, frozenset({ADMIN})),
         TokenSpec("chatter", CHAT_TOKEN, frozenset({CHAT}))]
    )  # fmt: skip
    # Redis is not running on this port: the failed-auth limit is skipped, auth is not.
    throttle = FailedAuthLimiter(_dead_redis(), "shapes", attempts=3, window_s=60)
    running: RunningServer = await start_server(
        name="shapes", address=f"127.0.0.1:{free_port()}", register=_register, auth=auth,
        throttle=throttle,
    )  # fmt: skip
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield channel
    finally:
        await channel.close(None)
        await running.server.stop(None)
        await throttle.close()


def _dead_redis() -> aioredis.Redis:
    return aioredis.Redis(port=free_port(), socket_connect_timeout=0.05)


Metadata = tuple[tuple[str, str], ...]
Call = Callable[[grpc.aio.Channel, Metadata], Any]


async def call_unary_unary(channel: grpc.aio.Channel, md: Metadata) -> list[str]:
    method = channel.unary_unary(f"/{SERVICE}/UnaryUnary", *CODEC)
    return [(await method(Text(value="a"), metadata=md, timeout=5)).value]


async def call_unary_stream(channel: grpc.aio.Channel, md: Metadata) -> list[str]:
    method = channel.unary_stream(f"/{SERVICE}/UnaryStream", *CODEC)
    return [r.value async for r in method(Text(value="a b"), metadata=md, timeout=5)]


async def _parts() -> AsyncIterator[Text]:
    for part in ("a", "b"):
        yield Text(value=part)


async def call_stream_unary(channel: grpc.aio.Channel, md: Metadata) -> list[str]:
    method = channel.stream_unary(f"/{SERVICE}/StreamUnary", *CODEC)
    return [(await method(_parts(), metadata=md, timeout=5)).value]


async def call_stream_stream(channel: grpc.aio.Channel, md: Metadata) -> list[str]:
    method = channel.stream_stream(f"/{SERVICE}/StreamStream", *CODEC)
    return [r.value async for r in method(_parts(), metadata=md, timeout=5)]


SHAPES: dict[str, tuple[Call, list[str]]] = {
    "unary-unary": (call_unary_unary, ["root:a"]),
    "unary-stream": (call_unary_stream, ["root:a", "root:b"]),
    "stream-unary": (call_stream_unary, ["root:a+b"]),
    "stream-stream": (call_stream_stream, ["root:a", "root:b"]),
}


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


async def status_without_writing(channel: grpc.aio.Channel, shape: str, md: Metadata) -> Any:
    """The final status of a client-streaming call that sends nothing: the server must
    refuse it from the metadata alone. (Writing while the server refuses races in grpcio:
    the client may then report INTERNAL for its failed write instead of the status.)"""
    name = "StreamUnary" if shape == "stream-unary" else "StreamStream"
    open_call = getattr(channel, shape.replace("-", "_"))
    call = open_call(f"/{SERVICE}/{name}", *CODEC)(metadata=md, timeout=5)
    return await call.code()


@pytest.mark.parametrize("shape", SHAPES)
async def test_every_handler_shape_needs_a_token(shapes: grpc.aio.Channel, shape: str) -> None:
    call, _ = SHAPES[shape]
    for md in ((), bearer("cg-wrong")):
        if shape.startswith("stream-"):
            code = await status_without_writing(shapes, shape, md)
            assert code is grpc.StatusCode.UNAUTHENTICATED, shape
            continue
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await call(shapes, md)
        assert failed.value.code() is grpc.StatusCode.UNAUTHENTICATED, shape


@pytest.mark.parametrize("shape", SHAPES)
async def test_every_handler_shape_checks_the_scope(shapes: grpc.aio.Channel, shape: str) -> None:
    call, _ = SHAPES[shape]
    # Methods outside the scope table need admin.
    if shape.startswith("stream-"):
        code = await status_without_writing(shapes, shape, bearer(CHAT_TOKEN))
        assert code is grpc.StatusCode.PERMISSION_DENIED
        return
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call(shapes, bearer(CHAT_TOKEN))
    assert failed.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "admin" in (failed.value.details() or "")


@pytest.mark.parametrize("shape", SHAPES)
async def test_every_handler_shape_runs_as_the_caller(shapes: grpc.aio.Channel, shape: str) -> None:
    call, expected = SHAPES[shape]
    assert await call(shapes, bearer(ADMIN_TOKEN)) == expected


async def test_a_handler_of_unknown_shape_is_refused(shapes: grpc.aio.Channel) -> None:
    method = shapes.stream_unary(f"/{SERVICE}/Shapeless", *CODEC)
    for md in ((), bearer(ADMIN_TOKEN)):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await method(_parts(), metadata=md, timeout=5)
        assert failed.value.code() is grpc.StatusCode.UNIMPLEMENTED
        assert "cannot be served" in (failed.value.details() or "")
