"""Prompt-cache latency: a cache HIT through Envoy, next to a MISS and a direct stand-in call.

    python -m bench.cache_latency                       # starts its own stack (stand-in)
    python -m bench.cache_latency --rest-url http://127.0.0.1:8000 --token "$TOKEN" \\
        --standin-url http://127.0.0.1:11434            # measures a running stack

Three series of N requests each (default 200), one at a time over a kept-alive
connection, each series bounded in time:
  HIT     the same request again and again through Envoy (answered from Redis);
  MISS    a new prompt every time through Envoy (chat service → stand-in ollama);
  direct  the same body straight to the stand-in's /v1/chat/completions.
Prints p50/p99/mean per series and the ratios. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.stack import STANDIN, clawgate_stack

CHAT_PATH = "/api/v1/chat/completions"
STANDIN_CHAT_PATH = "/v1/chat/completions"
DEFAULT_MODEL = "qwen3:32b"


@dataclass(frozen=True)
class Target:
    rest_url: str
    token: str
    standin_url: str


@dataclass
class Series:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    unexpected: int = 0  # replies with the wrong status or x-cache value

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        rank = max(1, math.ceil(fraction * len(ordered)))  # nearest rank
        return ordered[min(rank, len(ordered)) - 1]

    @property
    def p50(self) -> float:
        return self.percentile(0.50)

    @property
    def p99(self) -> float:
        return self.percentile(0.99)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.latencies_ms) if self.latencies_ms else float("nan")


def chat_body(model: str, prompt: str, max_tokens: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
    }
    if stream:
        body["stream"] = True
    return body


async def timed_post(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[float, int, str | None]:
    """Latency to the last byte (ms), status and x-cache of one request."""
    started = time.perf_counter()
    async with session.post(url, json=body, headers=headers) as reply:
        await reply.read()
        elapsed = (time.perf_counter() - started) * 1000
        return elapsed, reply.status, reply.headers.get("x-cache")


async def run_series(
    name: str,
    count: int,
    budget_s: float,
    send: Any,
    expect_cache: str | None,
) -> Series:
    series = Series(name)
    deadline = time.monotonic() + budget_s
    for i in range(count):
        if time.monotonic() > deadline:
            break
        ms, status, x_cache = await send(i)
        series.latencies_ms.append(ms)
        if status != 200 or (expect_cache is not None and x_cache != expect_cache):
            series.unexpected += 1
    return series


async def measure(target: Target, args: argparse.Namespace) -> list[Series]:
    auth = {"Authorization": f"Bearer {target.token}"}
    chat_url = target.rest_url.rstrip("/") + CHAT_PATH
    direct_url = target.standin_url.rstrip("/") + STANDIN_CHAT_PATH
    run_id = uuid.uuid4().hex[:8]
    hit_body = chat_body(args.model, f"[bench {run_id}] hit", args.max_tokens, args.stream)
    budget = args.max_seconds / 3

    connector = aiohttp.TCPConnector(limit=1)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Warm-up: store the HIT entry, open the connections, load the model.
        _, status, _ = await timed_post(session, chat_url, hit_body, auth)
        if status != 200:
            raise SystemExit(f"warm-up request failed with HTTP {status}: check URL and token")
        await timed_post(session, direct_url, hit_body, {})

        async def hit(_: int) -> tuple[float, int, str | None]:
            return await timed_post(session, chat_url, hit_body, auth)

        async def miss(i: int) -> tuple[float, int, str | None]:
            prompt = f"[bench {run_id}] miss {i}"
            body = chat_body(args.model, prompt, args.max_tokens, args.stream)
            return await timed_post(session, chat_url, body, auth)

        async def direct(_: int) -> tuple[float, int, str | None]:
            return await timed_post(session, direct_url, hit_body, {})

        return [
            await run_series("cache HIT via Envoy", args.requests, budget, hit, "HIT"),
            await run_series("cache MISS via Envoy", args.requests, budget, miss, "MISS"),
            await run_series("direct stand-in", args.requests, budget, direct, None),
        ]


def report(series: list[Series], args: argparse.Namespace) -> str:
    hit, miss, direct = series
    lines = [
        f"prompt-cache latency, model {args.model}, max_tokens {args.max_tokens}, "
        f"{'stream' if args.stream else 'JSON'} answers, last byte",
        "",
        f"{'series':<24}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'unexpected':>12}",
    ]
    for s in series:
        lines.append(
            f"{s.name:<24}{len(s.latencies_ms):>6}{s.p50:>10.2f}{s.p99:>10.2f}"
            f"{s.mean:>10.2f}{s.unexpected:>12}"
        )
    lines += [
        "",
        f"MISS / HIT   p50 {miss.p50 / hit.p50:6.1f}x   p99 {miss.p99 / hit.p99:6.1f}x",
        f"direct / HIT p50 {direct.p50 / hit.p50:6.1f}x   p99 {direct.p99 / hit.p99:6.1f}x",
    ]
    if any(s.unexpected for s in series):
        lines.append("WARNING: some replies had an unexpected status or x-cache value")
    return "\n".join(lines)


@contextlib.contextmanager
def own_stack(model: str, token_delay_ms: int) -> Iterator[Target]:
    """Redis, a stand-in ollama, the three services and Envoy, in a temporary directory."""
    with clawgate_stack(model, token_delay_ms) as stack:
        yield Target(stack.rest_url, stack.token, stack.standins[STANDIN])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.cache_latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--rest-url", help="Envoy's URL; without it the bench starts a stack")
    p.add_argument("--token", help="gateway token (with --rest-url)")
    p.add_argument("--standin-url", help="the stand-in ollama's root URL (with --rest-url)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("-n", "--requests", type=int, default=200, help="requests per series")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--max-seconds", type=float, default=120.0, help="time budget, all series")
    p.add_argument("--stream", action="store_true", help="measure SSE answers")
    p.add_argument("--token-delay-ms", type=int, default=5, help="stand-in pacing (own stack only)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON too")
    args = p.parse_args(argv)
    if args.rest_url and not (args.token and args.standin_url):
        p.error("--rest-url needs --token and --standin-url")
    if args.requests < 1:
        p.error("--requests must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.rest_url:
            target = Target(args.rest_url, args.token, args.standin_url)
        else:
            target = stack.enter_context(own_stack(args.model, args.token_delay_ms))
        series = asyncio.run(measure(target, args))
    print(report(series, args))
    if args.json:
        print(
            json.dumps(
                {
                    s.name: {"n": len(s.latencies_ms), "p50_ms": s.p50, "p99_ms": s.p99,
                             "mean_ms": s.mean, "unexpected": s.unexpected}
                    for s in series
                }
            )
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
