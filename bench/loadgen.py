"""The one load tool of `make bench`: an asyncio client run as its own process.

    python -m bench.loadgen < job.json > result.json

The harness writes a `Job` as JSON on stdin and reads a `result` JSON object on stdout, so
the load runs in a process of its own (its CPU is never counted as a target's) and every
target, Clawgate or a peer, is driven by the same code. Kinds of job:
  http  POST a chat body with aiohttp; `stream` reads SSE and times every chunk;
  grpc  CreateChatCompletion over grpc.aio (Clawgate direct or through Envoy).
`concurrency` workers share the request budget; the run stops after `requests` requests
or `duration_s` seconds, whichever comes first (every request also has `timeout_s`).
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

# An SSE event whose delta carries text: the first one is the stream's first token.
_CONTENT = re.compile(rb'"content"\s*:\s*"[^"]')
_DONE = b"data: [DONE]"


@dataclass
class Job:
    url: str  # http: the chat URL; grpc: host:port
    body: dict[str, Any]
    kind: str = "http"
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    concurrency: int = 1
    requests: int = 100
    duration_s: float = 10.0
    timeout_s: float = 30.0
    warmup: int = 0  # requests sent (one at a time) before measuring
    unique: bool = False  # a new prompt for every request (no cache hits)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        return cls(**data)


@dataclass
class Sample:
    """One request: times in ms from its start."""

    ok: bool
    total_ms: float
    first_byte_ms: float | None = None
    first_token_ms: float | None = None
    gaps_ms: list[float] = field(default_factory=list)
    status: str = ""
    x_cache: str | None = None
    error: str | None = None
    body: bytes = b""  # the start of an error answer, to tell failures apart


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 0.50),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else None,
    }


def censored_summary(values: list[float | None]) -> dict[str, float | int | None]:
    """Percentiles where None (never happened) sorts after every value and reads as null."""
    ordered = sorted(math.inf if v is None else v for v in values)
    out: dict[str, float | int | None] = {"missing": sum(v is None for v in values)}
    for name, fraction in (("p50", 0.50), ("p99", 0.99)):
        value = percentile(ordered, fraction)
        out[name] = None if value is None or math.isinf(value) else value
    return out


class Bodies:
    """Request bodies: the job's body, or a copy with a unique last message."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.run = uuid.uuid4().hex[:10]
        self.count = 0

    def next(self) -> dict[str, Any]:
        if not self.job.unique:
            return self.job.body
        self.count += 1
        body = copy.deepcopy(self.job.body)
        body["messages"][-1]["content"] += f" [{self.run}-{self.count}]"
        return body


async def http_request(session: aiohttp.ClientSession, job: Job, body: dict[str, Any]) -> Sample:
    """One request; what was measured before a failure (a stream's first token) is kept."""
    started = time.perf_counter()
    sample = Sample(False, 0.0)

    def ms() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        async with session.post(job.url, json=body, headers=job.headers) as reply:
            sample.status, sample.x_cache = str(reply.status), reply.headers.get("x-cache")
            if job.stream and reply.status == 200:
                await read_sse(reply, ms, sample)
            else:
                answer = await reply.read()
                sample.ok = reply.status == 200
                if not sample.ok:
                    sample.error, sample.body = f"HTTP {reply.status}", answer[:300]
    except TimeoutError:
        sample.ok, sample.error = False, "timeout"
    except aiohttp.ClientError as exc:
        sample.ok, sample.error = False, type(exc).__name__
    sample.total_ms = ms()
    return sample


async def read_sse(reply: aiohttp.ClientResponse, ms: Callable[[], float], sample: Sample) -> None:
    last: float | None = None
    tail = b""
    async for data in reply.content.iter_any():
        now = ms()
        if sample.first_byte_ms is None:
            sample.first_byte_ms = now
        if sample.first_token_ms is None and _CONTENT.search(data):
            sample.first_token_ms = now
        frames = data.count(b"data:")
        if frames:
            if last is not None:
                sample.gaps_ms.append(now - last)
            # A gap per chunk (frame), not per read: frames that came in one read (a server
            # that writes what waits as one message) followed the first one at once.
            sample.gaps_ms.extend([0.0] * (frames - 1))
            last = now
        tail = (tail + data)[-64:]
    sample.ok = _DONE in tail
    if not sample.ok:
        sample.error = "stream ended without [DONE]"


def grpc_caller(job: Job) -> tuple[Callable[[dict[str, Any]], Awaitable[Sample]], Any]:
    """A function sending one CreateChatCompletion, and the channel to close afterwards."""
    import grpc
    from google.protobuf import json_format

    from clawgate.chat.v1 import chat_service_pb2 as pb
    from clawgate.chat.v1 import chat_service_pb2_grpc as pb_grpc

    channel = grpc.aio.insecure_channel(job.url)
    stub = pb_grpc.ChatServiceStub(channel)  # type: ignore[no-untyped-call]
    metadata = tuple((k.lower(), v) for k, v in job.headers.items())

    async def call(body: dict[str, Any]) -> Sample:
        request = pb.CreateChatCompletionRequest(
            params=json_format.ParseDict(body, pb.ChatCompletionParams())
        )
        started = time.perf_counter()
        try:
            await stub.CreateChatCompletion(request, metadata=metadata, timeout=job.timeout_s)
            return Sample(True, (time.perf_counter() - started) * 1000, status="OK")
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
            return Sample(False, (time.perf_counter() - started) * 1000, status=code, error=code)

    return call, channel


async def run(job: Job) -> dict[str, Any]:
    bodies = Bodies(job)
    channel: Any = None
    session: aiohttp.ClientSession | None = None
    if job.kind == "grpc":
        send, channel = grpc_caller(job)
    else:
        connector = aiohttp.TCPConnector(limit=max(job.concurrency, 1), force_close=False)
        timeout = aiohttp.ClientTimeout(total=job.timeout_s)
        session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        http_session = session

        async def send(body: dict[str, Any]) -> Sample:
            return await http_request(http_session, job, body)

    samples: list[Sample] = []
    try:
        for _ in range(job.warmup):
            await send(bodies.next())
        issued = 0
        started = time.perf_counter()
        deadline = started + job.duration_s

        async def worker() -> None:
            nonlocal issued
            while issued < job.requests and time.perf_counter() < deadline:
                issued += 1
                samples.append(await send(bodies.next()))

        await asyncio.gather(*(worker() for _ in range(job.concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        if session is not None:
            await session.close()
        if channel is not None:
            await channel.close()
    return result(samples, elapsed)


def result(samples: list[Sample], elapsed_s: float) -> dict[str, Any]:
    ok = [s for s in samples if s.ok]
    failed = [s for s in samples if not s.ok]
    gaps = [g for s in ok for g in s.gaps_ms]
    return {
        "requests": len(samples),
        "ok": len(ok),
        "errors": dict(Counter(s.error for s in failed if s.error)),
        "error_sample": failed[0].body.decode("utf-8", "replace") if failed else None,
        "statuses": dict(Counter(s.status for s in samples)),
        "x_cache": dict(Counter(s.x_cache for s in samples if s.x_cache)),
        "elapsed_s": elapsed_s,
        "rps": len(ok) / elapsed_s if elapsed_s > 0 else 0.0,
        "latency_ms": summary([s.total_ms for s in ok]),
        "first_byte_ms": summary([s.first_byte_ms for s in ok if s.first_byte_ms is not None]),
        "first_token_ms": summary([s.first_token_ms for s in ok if s.first_token_ms is not None]),
        # Every request, failed ones too: one that never got a token counts as infinitely
        # late (a percentile landing there is null), so failures cannot flatter the number.
        "first_token_all_ms": censored_summary([s.first_token_ms for s in samples]),
        "gap_ms": summary(gaps),
    }


def main() -> int:
    job = Job.from_json(json.load(sys.stdin))
    json.dump(asyncio.run(run(job)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
