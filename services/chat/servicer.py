"""ChatService over gRPC: thin renderers around the shared pipeline.

- CreateChatCompletionHttp (REST through Envoy): one `application/json` HttpBody, or
  `text/event-stream` HttpBody frames ending with `data: [DONE]`. A stream starts (headers
  and a `: keep-alive` SSE comment) as soon as a worker accepted the request (answered
  200), and sends a comment after every `keepalive_s` of silence (waiting in a worker's
  queue, prompt evaluation), so clients and proxies see progress. Failures before that
  keep their HTTP status (queue full, worker down, bad request); after it they arrive as
  an SSE error frame and the stream ends without [DONE].
- CreateChatCompletion / StreamChatCompletion: the same answers as typed messages.

Streaming methods write with `context.write()` (no response generator), so a cancelled
call unwinds straight through the upstream request, which is closed at once and the worker
stops generating. SSE frames go through `SseWriter`, which writes the frames waiting behind
a write in flight as one message (and cancels the stream when a write fails).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import Any, TypeVar

import grpc
from google.api import httpbody_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

from clawgate.chat.v1 import chat_service_pb2 as pb
from clawgate.chat.v1 import chat_service_pb2_grpc as pb_grpc
from clawgate.common.config import ChatSettings
from clawgate.common.errors import ApiError, internal, invalid, quote
from clawgate.common.tokens import current_principal
from services.chat.cache import PromptCache
from services.chat.cache_key import parse_cache_control
from services.chat.extensions import Extensions, chunk_hook  # plugins & tools hook
from services.chat.heartbeats import with_heartbeats
from services.chat.metrics import observed, overhead_ms
from services.chat.models import ModelCatalogue
from services.chat.openai_format import (
    DONE_FRAME,
    ChunkEncoder,
    dumps,
    error_frame,
    sse_frame,
)
from services.chat.pipeline import CallOptions, Exchange, Pipeline
from services.chat.rate_limit import RateLimiter, rate_limit_headers
from services.chat.request import params_to_dict, parse_json_body
from services.chat.sse_writer import SseWriter
from services.chat.tools.loop import encode  # plugins & tools hook

log = logging.getLogger("clawgate.chat")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ChatService"].full_name
JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream"
CACHE_HEADER = "x-cache"
OVERHEAD_HEADER = "x-clawgate-overhead-ms"
TIMEOUT_HEADER = "x-request-timeout"
KEEPALIVE = b": keep-alive\n\n"

Context = grpc.aio.ServicerContext[Any, Any]
M = TypeVar("M", bound=Message)


def call_options(context: Context, settings: ChatSettings) -> CallOptions:
    """Deadline, cache controls and forwarded metadata of one call."""
    metadata = _metadata(context)
    deadline = settings.request_timeout_s
    override = next((v for k, v in metadata if k == TIMEOUT_HEADER), None)
    if override is not None:
        try:
            deadline = float(override)
        except ValueError:
            deadline = -1.0
        if not 0 < deadline <= 24 * 3600:
            raise invalid(
                f"Invalid '{TIMEOUT_HEADER}' header: expected seconds between 0 and 86400, "
                f"got {quote(override)}.",
                TIMEOUT_HEADER,
            )
    remaining = context.time_remaining()
    if remaining is not None:  # a gRPC deadline always wins when it is shorter
        deadline = min(deadline, remaining)
    principal = current_principal.get()
    return CallOptions(
        metadata=metadata,
        token_id=principal.tenant if principal is not None else None,
        cache_control=parse_cache_control([v for k, v in metadata if k == "cache-control"]),
        deadline_s=deadline,
    )


class ChatServicer(pb_grpc.ChatServiceServicer):
    def __init__(
        self,
        pipeline: Pipeline,
        catalogue: ModelCatalogue,
        cache: PromptCache | None = None,
        limits: RateLimiter | None = None,
        extensions: Extensions | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._catalogue = catalogue
        self._cache = cache
        self._limits = limits
        self._extensions = extensions  # plugins & tools hook

    # -- chat --------------------------------------------------------------------------
    # Streaming methods use context.write() rather than a response generator (see module
    # docstring), hence the different return type than the generated base class.
    async def CreateChatCompletionHttp(  # type: ignore[override]
        self, request: pb.CreateChatCompletionHttpRequest, context: Context
    ) -> None:
        with observed("CreateChatCompletionHttp") as record:
            raw = parse_json_body(request.body.data)
            exchange = record.exchange = await self._open(raw, None, context)
            await self._answer_http(exchange, context)

    async def _answer_http(self, exchange: Exchange, context: Context) -> None:
        if not exchange.request.stream:
            completion = await exchange.complete()
            await _send_headers(context, exchange)
            body = dumps(completion)
            await context.write(httpbody_pb2.HttpBody(content_type=JSON_TYPE, data=body))
            return
        await self._stream_sse(exchange, context)

    async def CreateChatCompletion(
        self, request: pb.CreateChatCompletionRequest, context: Context
    ) -> pb.ChatCompletion:
        with observed("CreateChatCompletion") as record:
            exchange = record.exchange = await self._open(
                params_to_dict(request.params), False, context
            )
            completion = await exchange.complete()
            await _send_headers(context, exchange)
            return _to_message(completion, pb.ChatCompletion())

    async def StreamChatCompletion(  # type: ignore[override]
        self, request: pb.StreamChatCompletionRequest, context: Context
    ) -> None:
        with observed("StreamChatCompletion") as record:
            exchange = record.exchange = await self._open(
                params_to_dict(request.params), True, context
            )

            async def write(chunk: dict[str, Any]) -> None:
                await context.write(_to_message(chunk, pb.ChatCompletionChunk()))

            # A failure after the first chunk ends the call with its gRPC status.
            await _render_chunks(exchange, context, write)

    async def _open(self, raw: dict[str, Any], stream: bool | None, context: Context) -> Exchange:
        call = call_options(context, self._pipeline.settings)
        exchange = await self._pipeline.open(raw, stream=stream, call=call)
        if self._limits is not None:
            await self._limits.admit(exchange, context)
        return exchange

    async def _stream_sse(self, exchange: Exchange, context: Context) -> None:
        async def send(data: bytes) -> None:
            await context.write(httpbody_pb2.HttpBody(content_type=SSE_TYPE, data=data))

        # Frames that wait while a write is in flight go out together as one message.
        async with SseWriter(send) as out:

            async def write(chunk: dict[str, Any]) -> None:
                await out.put(sse_frame(chunk))

            async def write_error(error: ApiError) -> None:
                await out.put(error_frame(error))

            async def write_comment() -> None:
                await out.put(KEEPALIVE)

            started = await _render_chunks(
                exchange, context, write, on_late_error=write_error, on_heartbeat=write_comment
            )
            if started:
                await out.put(DONE_FRAME)

    # -- models ------------------------------------------------------------------------
    async def ListModels(
        self, request: pb.ListModelsRequest, context: Context
    ) -> pb.ListModelsResponse:
        return await self._catalogue.list_models(_metadata(context))

    async def GetModel(self, request: pb.GetModelRequest, context: Context) -> pb.Model:
        return await self._catalogue.get_model(request.model, _metadata(context))

    # -- cache -------------------------------------------------------------------------
    async def GetCacheStats(
        self, request: pb.GetCacheStatsRequest, context: Context
    ) -> pb.CacheStats:
        if self._cache is None:
            return pb.CacheStats(enabled=False)
        return _to_message(self._cache.stats(), pb.CacheStats())

    async def PurgeCache(
        self, request: pb.PurgeCacheRequest, context: Context
    ) -> pb.PurgeCacheResponse:
        if self._cache is None:
            return pb.PurgeCacheResponse(deleted=0)
        return pb.PurgeCacheResponse(deleted=await self._cache.purge(request.model or None))

    # -- tools (plugins & tools hook) --------------------------------------------------
    async def ListTools(
        self, request: pb.ListToolsRequest, context: Context
    ) -> pb.ListToolsResponse:
        if self._extensions is None:
            return pb.ListToolsResponse(object="list")
        return await self._extensions.list_tools()


async def _render_chunks(
    exchange: Exchange,
    context: Context,
    write: Callable[[dict[str, Any]], Awaitable[None]],
    *,
    on_late_error: Callable[[ApiError], Awaitable[None]] | None = None,
    on_heartbeat: Callable[[], Awaitable[None]] | None = None,
) -> bool:
    """Write the answer as chunks; returns False when it ended with a late error.

    Headers go out with the first chunk, or as soon as a worker accepted the request.
    `on_heartbeat` (SSE: a comment) is written then and after each keepalive_s of silence.
    Before anything was sent every failure is raised (the call fails with its status).
    After it, `on_late_error` (SSE: an error frame) reports it instead, if given.
    """
    encoder = ChunkEncoder(
        exchange.request.requested_model, include_usage=exchange.request.include_usage
    )
    started = False

    async def start() -> None:
        nonlocal started
        if not started:
            await _send_headers(context, exchange)
            started = True

    async def emit(chunks: list[dict[str, Any]]) -> None:
        for chunk in chunks:
            chunk = await chunk_hook(exchange, chunk)  # plugins & tools hook: on_chunk
            await start()
            await write(chunk)

    interval = exchange.pipeline.settings.keepalive_s
    try:
        async with (
            aclosing(exchange.deltas()) as deltas,
            aclosing(with_heartbeats(deltas, exchange.accepted, interval)) as beats,
        ):
            async for delta in beats:
                if delta is not None:
                    await emit(encode(encoder, delta))  # plugins & tools hook: tool steps
                    continue
                await start()
                if on_heartbeat is not None:
                    await on_heartbeat()
        await emit(encoder.end())
        return True
    except Exception as exc:
        if not started or on_late_error is None:
            raise
        if isinstance(exc, ApiError):
            error = exc
        else:
            log.exception("chat stream failed")
            error = internal()
        log.warning("stream ended by error", extra={"code": error.code, "error": error.message})
        await on_late_error(error)
        return False


async def _send_headers(context: Context, exchange: Exchange) -> None:
    # The gateway's own time up to these headers: the whole call for JSON answers (sent
    # when the answer is complete), the time to accept the request for streams.
    overhead = (OVERHEAD_HEADER, f"{overhead_ms(exchange.upstream_elapsed()):.2f}")
    headers = ((CACHE_HEADER, exchange.cache_status), overhead, *rate_limit_headers.get())
    await context.send_initial_metadata(headers)


def _metadata(context: Context) -> list[tuple[str, str]]:
    """The call's text metadata (binary `-bin` entries are never forwarded)."""
    return [
        (k, v.decode() if isinstance(v, bytes) else v)
        for k, v in context.invocation_metadata() or ()
        if not k.endswith("-bin")
    ]


def _to_message(value: Mapping[str, Any], message: M) -> M:
    """An OpenAI JSON object as the typed proto (fields the proto lacks are dropped)."""
    json_format.ParseDict(_drop_nulls(value), message, ignore_unknown_fields=True)
    return message


def _drop_nulls(value: Any) -> Any:
    # null content stays (a Value field); null scalars mean "absent" in proto3.
    if isinstance(value, dict):
        return {
            k: v if k == "content" else _drop_nulls(v)
            for k, v in value.items()
            if v is not None or k == "content"
        }
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value
