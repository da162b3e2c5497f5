"""POST /api/chat and POST /v1/chat/completions: validation, scheduling, failures, streaming.

Each native chunk is written and flushed as it is "generated". Response headers go out
with the first chunk, so queueing, model load and prompt evaluation send nothing at all,
and errors up to that point still get a proper status, as with ollama.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

from aiohttp import web

from . import misbehave, native_format, openai_format
from .chat_job import ApiError, ChatJob
from .chat_request import parse_native, parse_openai
from .generation import Generation, GenerationInput, Step, generate, inline_think_tags
from .models import ModelSpec, find_model, parse_name
from .request_log import RequestRecord
from .settings import Settings
from .state import STATE, StandinState
from .wire import go_json_bytes

Api = Literal["openai", "native"]
T = TypeVar("T")

BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
RUNNER_CRASH_MESSAGE = "an error was encountered while running the model: unexpected EOF"
JSON_V1 = "application/json"
JSON_GIN = "application/json; charset=utf-8"
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
_POLL_S = 0.02  # how often a wait checks that the client is still connected


class ClientGone(Exception):
    """The client closed the connection while we were generating or waiting."""


def drop_connection(request: web.BaseRequest) -> web.Response:
    """Close the TCP connection with no response at all, like a crashed server."""
    if request.transport is not None:
        request.transport.close()
    return web.Response()  # never reaches the client: aiohttp sees the closed transport


class Exchange:
    """One chat request/response: disconnect-aware waits and chunk writes, logged."""

    def __init__(self, request: web.Request, record: RequestRecord, api: Api) -> None:
        self.request = request
        self.record = record
        self.api = api
        self.response: web.StreamResponse | None = None

    def connected(self) -> bool:
        transport = self.request.transport
        return transport is not None and not transport.is_closing()

    async def pause(self, seconds: float) -> None:
        """Sleep, noticing a disconnect within _POLL_S even without handler cancellation."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            if not self.connected():
                raise ClientGone
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, _POLL_S))

    async def guard(self, awaitable: Awaitable[T]) -> T:
        """Await something unbounded (a free runner slot) while watching the client."""
        task = asyncio.ensure_future(awaitable)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=_POLL_S)
                if done:
                    return task.result()
                if not self.connected():
                    raise ClientGone
        finally:
            if not task.done():
                task.cancel()

    async def send(self, data: bytes, content_type: str) -> None:
        if self.response is None:
            self.response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
            await self.response.prepare(self.request)
            self.record.http_status = 200
            self.record.mark_first_byte()
        await self.response.write(data)
        self.record.chunks_sent += 1

    async def end(
        self, status: Literal["completed", "error"] = "completed", error: str | None = None
    ) -> web.StreamResponse:
        assert self.response is not None
        await self.response.write_eof()
        self.record.finish(status, error=error)
        return self.response

    async def reply(
        self, status: int, body: bytes, content_type: str, *, error: str | None = None
    ) -> web.Response:
        response = web.Response(status=status, body=body, headers={"Content-Type": content_type})
        await response.prepare(self.request)
        self.record.mark_first_byte()
        self.record.chunks_sent += 1
        await response.write_eof()
        self.record.finish("error" if error else "completed", http_status=status, error=error)
        return response

    async def error(self, exc: ApiError, settings: Settings) -> web.Response:
        if self.api == "openai":
            body = openai_format.error_body(
                exc.status,
                exc.message,
                api_error_only=settings.api_error_only,
                middleware=exc.middleware,
            )
            return await self.reply(
                exc.status, go_json_bytes(body, newline=True), JSON_V1, error=exc.message
            )
        return await self.reply(
            exc.status, go_json_bytes({"error": exc.message}), JSON_GIN, error=exc.message
        )


async def handle_openai(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "openai")


async def handle_native(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "native")


async def _handle(request: web.Request, api: Api) -> web.StreamResponse:
    state = request.app[STATE]
    raw = await request.read()
    try:
        parsed_body: Any = json.loads(raw) if raw.strip() else None
    except ValueError:
        parsed_body = None
    record = state.log.start(request, parsed_body)
    exchange = Exchange(request, record, api)
    try:
        return await _serve(exchange, state, raw)
    except asyncio.CancelledError:
        # handler_cancellation=True: aiohttp cancels us as soon as the client goes away.
        record.finish("cancelled")
        raise
    except (ClientGone, ConnectionError):
        record.finish("cancelled")
        return exchange.response or web.Response()
    except Exception as exc:
        record.finish("error", error=repr(exc))
        raise


async def _serve(ex: Exchange, state: StandinState, raw: bytes) -> web.StreamResponse:
    settings = state.settings
    if settings.fail == "down" and settings.take_fail() == "down":
        ex.record.fail = "down"
        ex.record.finish("error", error="connection dropped (fail=down)")
        return drop_connection(ex.request)
    try:
        job = parse_openai(raw) if ex.api == "openai" else parse_native(raw)
        spec = _check(job, settings)
    except ApiError as exc:
        return await ex.error(exc, settings)
    if settings.fail in ("flood", "garbage") and (mode := settings.take_fail()) is not None:
        ex.record.fail = mode
        ex.record.finish("error", error=f"misbehaving (fail={mode})")
        return await _misbehave(ex, job, mode, settings)

    key = spec.parsed.key
    if ex.api == "native" and not job.messages:
        return await _load_only(ex, state, job, spec, key)

    think = _effective_think(job, spec, settings)
    try:
        _scheduling_failure(ex, settings, spec)
        if job.deferred_error is not None:
            raise job.deferred_error
    except ApiError as exc:
        return await ex.error(exc, settings)

    started = time.monotonic_ns()
    await ex.guard(state.runners.acquire(key, lambda: state.settings.num_parallel))
    try:
        await _ensure_loaded(ex, state, spec, key, job)
        state.runners.begin(key)
        try:
            load_ns = time.monotonic_ns() - started
            gen = generate(
                GenerationInput(
                    model=job.model,
                    messages=job.messages,
                    temperature=job.temperature,
                    top_p=job.top_p,
                    seed=job.seed,
                    stop=job.stop,
                    num_predict=job.num_predict,
                    think=think,
                    tools=job.tools,
                    format=job.format,
                )
            )
            # Re-read: the switches may have changed while this request was queued.
            now_settings = state.settings
            if now_settings.think_tags_in_content and (ex.api == "openai" or job.think is None):
                gen = inline_think_tags(gen)
            cut = now_settings.fail in ("cut", "stall") and now_settings.take_fail() is not None
            if cut:
                ex.record.fail = "stall" if now_settings.fail == "stall" else "cut"
            if job.stream:
                return await _stream(ex, now_settings, job, gen, cut, started, load_ns)
            return await _single(ex, now_settings, job, gen, cut, started, load_ns)
        finally:
            state.runners.end(key, job.keep_alive_s, state.settings.keep_alive_s)
    finally:
        state.runners.release(key)


async def _misbehave(
    ex: Exchange, job: ChatJob, mode: str, settings: Settings
) -> web.StreamResponse:
    content_type = SSE if ex.api == "openai" else NDJSON
    if mode == "garbage":
        return await misbehave.garbage(ex.request, settings.garbage_kind, content_type)
    step = Step(content=misbehave.FLOOD_PIECE)
    if ex.api == "openai":
        encoder = openai_format.ChunkEncoder(
            _completion_id(), job.model, include_usage=False, legacy=False
        )
        chunk = b"".join(_sse(c) for c in encoder.step(step, int(time.time())))
    else:
        chunk = go_json_bytes(native_format.chunk(job.model, time.time_ns(), step), newline=True)
    return await misbehave.flood(ex.request, chunk, content_type)


def _check(job: ChatJob, settings: Settings) -> ModelSpec:
    """The chat handler's checks, in ollama's order."""
    if not job.model:
        raise ApiError(400, "model is required")
    if parse_name(job.model) is None:
        raise ApiError(400, "invalid model name")
    spec = find_model(settings.models, job.model)
    if spec is None:
        if settings.old_not_found_message:
            raise ApiError(404, f"model {json.dumps(job.model)} not found, try pulling it first")
        raise ApiError(404, f"model '{job.model}' not found")
    caps = spec.effective_capabilities(settings.thinking_prefixes)
    if job.think not in (None, False) and "thinking" not in caps:
        raise ApiError(400, f"{json.dumps(job.model)} does not support thinking")
    if job.tools and "tools" not in caps:
        raise ApiError(400, f"{spec.parsed.full} does not support tools")
    if not 0 <= job.top_logprobs <= 20:
        raise ApiError(400, "top_logprobs must be between 0 and 20")
    return spec


def _effective_think(job: ChatJob, spec: ModelSpec, settings: Settings) -> bool | str:
    # Since v0.12.4 a thinking-capable model thinks unless told not to.
    if job.think is None:
        return "thinking" in spec.effective_capabilities(settings.thinking_prefixes)
    return job.think


def _scheduling_failure(ex: Exchange, settings: Settings, spec: ModelSpec) -> None:
    if settings.fail == "busy" and settings.take_fail() == "busy":
        ex.record.fail = "busy"
        raise ApiError(503, BUSY_MESSAGE)
    if settings.fail == "oom" and settings.take_fail() == "oom":
        ex.record.fail = "oom"
        raise ApiError(500, spec.oom_message())


async def _ensure_loaded(
    ex: Exchange, state: StandinState, spec: ModelSpec, key: str, job: ChatJob
) -> None:
    """Cold start (or reload for a different num_ctx) costs load_delay_ms, silently."""
    settings = state.settings
    num_ctx = job.num_ctx or settings.default_num_ctx
    loaded = state.runners.current(key)
    if loaded is not None and (job.num_ctx is None or loaded.context_length == num_ctx):
        return
    await ex.pause(settings.load_delay_ms / 1000)
    keep = settings.keep_alive_s if job.keep_alive_s is None else job.keep_alive_s
    state.runners.load(key, spec.name, num_ctx, keep)


async def _load_only(
    ex: Exchange, state: StandinState, job: ChatJob, spec: ModelSpec, key: str
) -> web.StreamResponse:
    """/api/chat with no messages: preload the model, or unload it with keep_alive 0."""
    settings = state.settings
    if job.keep_alive_s == 0:
        state.runners.unload(key)
        body = native_format.load_reply(job.model, time.time_ns(), "unload")
        return await ex.reply(200, go_json_bytes(body), JSON_GIN)
    try:
        _scheduling_failure(ex, settings, spec)
    except ApiError as exc:
        return await ex.error(exc, settings)
    await ex.guard(state.runners.acquire(key, lambda: state.settings.num_parallel))
    try:
        await _ensure_loaded(ex, state, spec, key, job)
        state.runners.begin(key)
        state.runners.end(key, job.keep_alive_s, settings.keep_alive_s)
    finally:
        state.runners.release(key)
    body = native_format.load_reply(job.model, time.time_ns(), "load")
    return await ex.reply(200, go_json_bytes(body), JSON_GIN)


def _completion_id() -> str:
    return f"chatcmpl-{random.randrange(999)}"  # rand.Intn(999): not unique, by design


def _metrics(
    gen: Generation, started: int, load_ns: int, first_ns: int, end_ns: int
) -> native_format.Metrics:
    return native_format.Metrics(
        total_duration=max(1, end_ns - started),
        load_duration=max(1, load_ns),
        prompt_eval_count=gen.prompt_tokens,
        prompt_eval_duration=max(1, first_ns - started - load_ns),
        eval_count=gen.eval_count,
        eval_duration=max(1, end_ns - first_ns),
    )


async def _single(
    ex: Exchange,
    settings: Settings,
    job: ChatJob,
    gen: Generation,
    cut: bool,
    started: int,
    load_ns: int,
) -> web.StreamResponse:
    await ex.pause(settings.first_token_delay_ms / 1000)
    first_ns = time.monotonic_ns()
    await ex.pause(settings.token_delay_ms * len(gen.steps) / 1000)
    if cut:  # the runner died before anything was sent: a plain 500
        return await ex.error(ApiError(500, RUNNER_CRASH_MESSAGE), settings)
    end_ns = time.monotonic_ns()
    now_ns = time.time_ns()
    if ex.api == "openai":
        body = openai_format.completion(
            _completion_id(), job.model, now_ns // 1_000_000_000, gen, legacy=settings.legacy_stream
        )
        return await ex.reply(200, go_json_bytes(body, newline=True), JSON_V1)
    metrics = _metrics(gen, started, load_ns, first_ns, end_ns)
    return await ex.reply(
        200, go_json_bytes(native_format.full(job.model, now_ns, gen, metrics)), JSON_GIN
    )


def _sse(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else go_json_bytes(payload).decode()
    return f"data: {text}\n\n".encode()


async def _stream(
    ex: Exchange,
    settings: Settings,
    job: ChatJob,
    gen: Generation,
    cut: bool,
    started: int,
    load_ns: int,
) -> web.StreamResponse:
    if cut and settings.cut_after == 0:
        return await ex.error(ApiError(500, RUNNER_CRASH_MESSAGE), settings)
    content_type = SSE if ex.api == "openai" else NDJSON
    encoder = openai_format.ChunkEncoder(
        _completion_id(), job.model, include_usage=job.include_usage, legacy=settings.legacy_stream
    )
    await ex.pause(settings.first_token_delay_ms / 1000)
    first_ns = time.monotonic_ns()
    for index, step in enumerate(gen.steps):
        if cut and index == settings.cut_after:
            if ex.record.fail == "stall":
                await misbehave.stall(ex.request)
                raise ClientGone
            break
        await ex.pause(settings.token_delay_ms / 1000)
        now_ns = time.time_ns()
        if ex.api == "openai":
            for chunk in encoder.step(step, now_ns // 1_000_000_000):
                await ex.send(_sse(chunk), content_type)
        else:
            await ex.send(
                go_json_bytes(native_format.chunk(job.model, now_ns, step), newline=True),
                content_type,
            )

    if cut:
        # Mid-stream runner failure (§1.4): native gets an error line; /v1 gets the empty
        # chunk that line decodes into, then the stream just ends: no finish, no [DONE].
        if ex.api == "openai":
            await ex.send(_sse(encoder.broken()), content_type)
        else:
            await ex.send(
                go_json_bytes({"error": RUNNER_CRASH_MESSAGE}, newline=True), content_type
            )
        return await ex.end("error", RUNNER_CRASH_MESSAGE)

    end_ns = time.monotonic_ns()
    now_ns = time.time_ns()
    if ex.api == "openai":
        for chunk in encoder.finish(gen, now_ns // 1_000_000_000):
            await ex.send(_sse(chunk), content_type)
        await ex.send(_sse("[DONE]"), content_type)
    else:
        metrics = _metrics(gen, started, load_ns, first_ns, end_ns)
        done = native_format.done(job.model, now_ns, gen.done_reason, metrics)
        await ex.send(go_json_bytes(done, newline=True), content_type)
    return await ex.end()
