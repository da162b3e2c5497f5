"""Soak: mixed traffic against a private stack with a flaky worker, memory and fds over time.

    python -m bench.soak --minutes 10              # writes bench/results/soak-<date>.md/.json
    python -m bench.soak --seconds 20 --out /tmp   # the smoke run the test suite does

Starts its own stack (Redis, the three services, Envoy, two stand-in workers serving one
model: `steady`, and `flaky`, which gets a new failure every few seconds: cut answers,
stalls, garbage, busy, down, slow first token). `--clients` loops send, at random:
  unary      a JSON answer (some prompts repeat, so the cache answers part of them);
  stream     an SSE answer read to the end;
  cancel     a stream closed after its first data frame;
  slow       a stream read a line at a time with pauses (a slow reader).
Every `--sample-seconds` it records RSS (VmRSS) and open fds of every process of the stack.

Outcomes: a complete answer; an *expected* error (a well-formed OpenAI error the gateway
gives on purpose under overload or when every worker failed: 429 `upstream_queue_full`,
502/503/504 `upstream_*`, or an SSE error event of that kind); anything else is
*unexpected* (500s, errors not in OpenAI's shape, streams that end without [DONE] or an
error event, client timeouts). Bounded: loopback only, stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

MODEL = "soak:1"
CHAT_PATH = "/api/v1/chat/completions"
KINDS = ("unary", "stream", "cancel", "slow")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CLIENT_TIMEOUT_S = 60.0  # per request: the hang guard that makes a hang "unexpected"
# (settings patched on the flaky worker, how long it keeps them)
FAULTS: tuple[tuple[dict[str, Any], float], ...] = (
    ({"fail": "cut", "fail_times": 3, "cut_after": 2}, 4.0),
    ({"fail": "stall", "fail_times": 2, "cut_after": 2}, 4.0),
    ({"fail": "garbage", "fail_times": 3, "garbage_kind": "json"}, 4.0),
    ({"fail": "garbage", "fail_times": 2, "garbage_kind": "http"}, 4.0),
    ({"fail": "busy", "fail_times": 3}, 4.0),
    ({"fail": "down", "fail_times": 3}, 4.0),
    ({"first_token_delay_ms": 8000}, 6.0),
)
EXPECTED_STATUSES = {429, 502, 503, 504}
PARALLEL = {"num_parallel": 4}


@dataclass
class Stats:
    outcomes: Counter[str] = field(default_factory=Counter)  # "kind ok|expected:code|…"
    unexpected: list[str] = field(default_factory=list)
    latencies_ms: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    faults: Counter[str] = field(default_factory=Counter)

    def record(self, kind: str, outcome: str, started: float, detail: str = "") -> None:
        self.outcomes[f"{kind} {outcome}"] += 1
        if outcome == "ok":
            self.latencies_ms[kind].append((time.monotonic() - started) * 1000)
        if outcome.startswith("unexpected") and len(self.unexpected) < 50:
            self.unexpected.append(f"{kind}: {outcome} {detail[:300]}")


@dataclass
class Sample:
    t_s: float
    rss_kb: dict[str, int]
    fds: dict[str, int]


def _error_outcome(status: int, text: str) -> str:
    try:
        error = json.loads(text)["error"]
        code = error["code"]
        assert set(error) == {"message", "type", "param", "code"}
    except (ValueError, KeyError, TypeError, AssertionError):
        return f"unexpected:{status}-not-openai-shaped"
    if status in EXPECTED_STATUSES and isinstance(code, str) and code.startswith("upstream_"):
        return f"expected:{code}"
    return f"unexpected:{status}-{code}"


def _stream_outcome(frames: list[str]) -> str:
    data = [f.removeprefix("data: ") for f in frames if f.startswith("data: ")]
    if data and data[-1] == "[DONE]":
        return "ok"
    if data:
        try:
            error = json.loads(data[-1]).get("error")
        except ValueError:
            error = None
        if isinstance(error, dict) and str(error.get("code", "")).startswith("upstream_"):
            return f"expected:sse-{error['code']}"
    return "unexpected:stream-ended-without-done-or-error"


class Traffic:
    def __init__(self, rest_url: str, token: str, stats: Stats, rng: random.Random) -> None:
        self.url = rest_url.rstrip("/") + CHAT_PATH
        self.auth = {"Authorization": f"Bearer {token}"}
        self.stats = stats
        self.rng = rng
        self.repeated = [f"soak repeated prompt {i}" for i in range(20)]

    def body(self, stream: bool) -> dict[str, Any]:
        if not stream and self.rng.random() < 0.3:
            prompt = self.rng.choice(self.repeated)  # cache hits
        else:
            prompt = f"soak {uuid.uuid4().hex}"
        return {
            "model": MODEL,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": self.rng.randint(8, 64),
            "stream": stream,
        }

    async def one(self, session: aiohttp.ClientSession, kind: str) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(CLIENT_TIMEOUT_S):
                outcome, detail = await self._send(session, kind)
        except TimeoutError:
            outcome, detail = "unexpected:client-timeout", ""
        except aiohttp.ClientError as exc:
            outcome, detail = f"unexpected:{type(exc).__name__}", str(exc)
        self.stats.record(kind, outcome, started, detail)

    async def _send(self, session: aiohttp.ClientSession, kind: str) -> tuple[str, str]:
        stream = kind != "unary"
        async with session.post(self.url, json=self.body(stream), headers=self.auth) as reply:
            if reply.status != 200:
                text = await reply.text()
                return _error_outcome(reply.status, text), text
            if kind == "unary":
                answer = await reply.json()
                ok = answer.get("choices") and answer["choices"][0]["finish_reason"]
                return ("ok", "") if ok else ("unexpected:incomplete-json", json.dumps(answer))
            frames: list[str] = []
            buffer = ""
            async for raw in reply.content:
                buffer += raw.decode()
                while "\n\n" in buffer:
                    frame, buffer = buffer.split("\n\n", 1)
                    frames.append(frame)
                    if kind == "cancel" and frame.startswith("data: {"):
                        reply.close()  # the client goes away mid-answer
                        return "ok", ""
                if kind == "slow":
                    await asyncio.sleep(self.rng.uniform(0.02, 0.2))
            return _stream_outcome(frames), "\n".join(frames[-2:])

    async def client_loop(self, session: aiohttp.ClientSession, until: float) -> None:
        weights = (4, 3, 2, 1)
        while time.monotonic() < until:
            await self.one(session, self.rng.choices(KINDS, weights)[0])


async def fault_loop(
    standin_url: str, stats: Stats, rng: random.Random, until: float, http: aiohttp.ClientSession
) -> None:
    settings_url = standin_url.rstrip("/") + "/_standin/settings"
    reset_url = standin_url.rstrip("/") + "/_standin/reset"
    while time.monotonic() < until:
        changes, hold_s = rng.choice(FAULTS)
        async with http.patch(settings_url, json=changes) as reply:
            reply.raise_for_status()
        stats.faults[json.dumps(changes, sort_keys=True)] += 1
        await asyncio.sleep(min(hold_s, max(0.0, until - time.monotonic())))
        async with http.post(reset_url) as reply:
            reply.raise_for_status()
        async with http.patch(settings_url, json=PARALLEL) as reply:
            reply.raise_for_status()
        await asyncio.sleep(min(rng.uniform(1.0, 3.0), max(0.0, until - time.monotonic())))


def read_process(pid: int) -> tuple[int, int]:
    """(VmRSS in kB, open fds) of a live process; (0, 0) when it is gone."""
    try:
        rss = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0, 0


async def sample_loop(
    pids: dict[str, int], samples: list[Sample], every_s: float, started: float, until: float
) -> None:
    while True:
        rss, fds = {}, {}
        for name, pid in pids.items():
            rss[name], fds[name] = read_process(pid)
        samples.append(Sample(round(time.monotonic() - started, 1), rss, fds))
        if time.monotonic() >= until:
            return
        await asyncio.sleep(min(every_s, max(0.0, until - time.monotonic())))


async def soak(
    rest_url: str, token: str, standins: dict[str, str], pids: dict[str, int],
    args: argparse.Namespace,
) -> tuple[Stats, list[Sample]]:  # fmt: skip
    stats, samples = Stats(), list[Sample]()
    rng = random.Random(args.seed)
    started = time.monotonic()
    until = started + args.duration_s
    traffic = Traffic(rest_url, token, stats, rng)
    timeout = aiohttp.ClientTimeout(total=None)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as control,
    ):
        for url in standins.values():  # like OLLAMA_NUM_PARALLEL=4 (the gateway's default)
            async with control.patch(f"{url}/_standin/settings", json=PARALLEL) as reply:
                reply.raise_for_status()
        tasks = [traffic.client_loop(session, until) for _ in range(args.clients)]
        await asyncio.gather(
            *tasks,
            fault_loop(standins["flaky"], stats, rng, until, control),
            sample_loop(pids, samples, args.sample_seconds, started, until),
        )
    # One last sample once the traffic has drained: what is still held afterwards.
    await asyncio.sleep(1.0)
    rss, fds = {}, {}
    for name, pid in pids.items():
        rss[name], fds[name] = read_process(pid)
    samples.append(Sample(round(time.monotonic() - started, 1), rss, fds))
    return stats, samples


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1]


def summary(stats: Stats, samples: list[Sample], args: argparse.Namespace) -> dict[str, Any]:
    # Growth is measured from the first sample after warm-up (a fifth of the run).
    warm = next((s for s in samples if s.t_s >= args.duration_s / 5), samples[0])
    last = samples[-1]
    processes = {}
    for name in last.rss_kb:
        series = [s.rss_kb[name] for s in samples]
        growth_kb = last.rss_kb[name] - warm.rss_kb[name]
        processes[name] = {
            "rss_first_kb": samples[0].rss_kb[name],
            "rss_after_warmup_kb": warm.rss_kb[name],
            "rss_max_kb": max(series),
            "rss_last_kb": last.rss_kb[name],
            "rss_growth_after_warmup_kb": growth_kb,
            # Flat: within 10 % (and 8 MB) of the level after warm-up.
            "rss_flat": growth_kb <= max(8 * 1024, warm.rss_kb[name] // 10),
            "fds_first": samples[0].fds[name],
            "fds_max": max(s.fds[name] for s in samples),
            "fds_last": last.fds[name],
        }
    total = sum(stats.outcomes.values())
    unexpected = sum(n for k, n in stats.outcomes.items() if " unexpected" in k)
    return {
        "started_at": args.started_at,
        "duration_s": args.duration_s,
        "clients": args.clients,
        "seed": args.seed,
        "requests": total,
        "unexpected": unexpected,
        "outcomes": dict(sorted(stats.outcomes.items())),
        "unexpected_examples": stats.unexpected,
        "latency_ms": {
            kind: {"n": len(v), "p50": percentile(v, 0.5), "p99": percentile(v, 0.99)}
            for kind, v in sorted(stats.latencies_ms.items())
        },
        "faults_injected": dict(stats.faults),
        "processes": processes,
        "samples": [{"t_s": s.t_s, "rss_kb": s.rss_kb, "fds": s.fds} for s in samples],
    }


def markdown(result: dict[str, Any]) -> str:
    minutes = result["duration_s"] / 60
    flat = all(p["rss_flat"] for p in result["processes"].values())
    lines = [
        f"# Soak {result['started_at']}",
        "",
        f"{minutes:g} minutes, {result['clients']} clients, seed {result['seed']}: "
        f"{result['requests']} requests, **{result['unexpected']} unexpected**; memory "
        f"{'flat' if flat else '**NOT flat**'} after warm-up.",
        "",
        "## Outcomes",
        "",
        "| kind and outcome | count |",
        "|---|---|",
        *(f"| {k} | {n} |" for k, n in result["outcomes"].items()),
        "",
        "| kind | ok | p50 ms | p99 ms |",
        "|---|---|---|---|",
        *(
            f"| {k} | {v['n']} | {v['p50']:.1f} | {v['p99']:.1f} |"
            for k, v in result["latency_ms"].items()
        ),
        "",
        "Faults injected on the flaky worker: "
        + ", ".join(f"`{k}` x{n}" for k, n in sorted(result["faults_injected"].items())),
        "",
        "## Memory and file descriptors per process",
        "",
        "| process | RSS first MB | after warm-up | max | last | growth after warm-up | "
        "flat | fds first | max | last |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in result["processes"].items():
        lines.append(
            f"| {name} | {p['rss_first_kb'] / 1024:.1f} | {p['rss_after_warmup_kb'] / 1024:.1f}"
            f" | {p['rss_max_kb'] / 1024:.1f} | {p['rss_last_kb'] / 1024:.1f}"
            f" | {p['rss_growth_after_warmup_kb'] / 1024:+.1f} | {'yes' if p['rss_flat'] else 'NO'}"
            f" | {p['fds_first']} | {p['fds_max']} | {p['fds_last']} |"
        )
    names = list(result["processes"])
    lines += [
        "",
        "## RSS over time (MB)",
        "",
        "| t s | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    samples = result["samples"]
    step = max(1, len(samples) // 30)
    for s in [*samples[::step][:-1], samples[-1]]:
        cells = " | ".join(f"{s['rss_kb'][n] / 1024:.1f}" for n in names)
        lines.append(f"| {s['t_s']:g} | {cells} |")
    if result["unexpected_examples"]:
        lines += ["", "## Unexpected (first 50)", ""]
        lines += [f"- `{e}`" for e in result["unexpected_examples"]]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def own_stack(state: Path) -> Iterator[Any]:
    from clawgate.launcher.stack import Stack, local_plan

    def config_for(urls: dict[str, str]) -> dict[str, Any]:
        workers = [urls["steady"] + "/v1", urls["flaky"] + "/v1"]
        return {
            "providers": {
                "soak": {
                    "baseUrl": workers[0],
                    "baseUrls": workers[1:],
                    "api": "openai-completions",
                    "models": [{"id": MODEL, "contextWindow": 8192, "maxTokens": 256}],
                }
            },
            "cache": {"namespace": f"soak-{uuid.uuid4().hex[:8]}", "ttlSeconds": 120},
            "chat": {"firstTokenTimeoutSeconds": 3, "idleTimeoutSeconds": 2,
                     "requestTimeoutSeconds": 30, "workerConcurrency": 4,
                     "workerQueueLength": 32, "workerQueueWaitSeconds": 5,
                     "ejectAfterFailures": 3, "ejectBaseSeconds": 2, "ejectMaxSeconds": 10},
        }  # fmt: skip

    plan = local_plan(
        state, {"steady": (MODEL,), "flaky": (MODEL,)}, config_for,
        extra_env={"CLAWGATE_LOG_LEVEL": "warning"}, token_delay_ms=10,
    )  # fmt: skip
    stack = Stack(plan)
    try:
        print("starting the stack (Redis, two stand-ins, services, Envoy)...", file=sys.stderr)
        stack.start()
        yield stack
    finally:
        stack.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    length = p.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="how long to run (default 10)")
    length.add_argument("--seconds", type=float, help="how long to run, in seconds")
    p.add_argument("--clients", type=int, default=12, help="concurrent client loops")
    p.add_argument("--sample-seconds", type=float, default=10.0, help="RSS/fd sampling period")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the report")
    args = p.parse_args(argv)
    args.duration_s = args.seconds if args.seconds is not None else 60 * (args.minutes or 10)
    if not 0 < args.duration_s <= 24 * 3600 or args.clients < 1 or args.sample_seconds <= 0:
        p.error("duration, --clients and --sample-seconds must be positive")
    args.started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return args


def run(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """Run the soak; returns the result and the markdown report's path."""
    with tempfile.TemporaryDirectory(prefix="clawgate-soak-") as tmp, own_stack(Path(tmp)) as st:
        pids = {
            name.replace("standin:", ""): child.process.pid
            for name, child in st.children.items()
            if child.process is not None
        }
        stats, samples = asyncio.run(soak(st.rest_url, st.token, st.standins, pids, args))
    result = summary(stats, samples, args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "soak-" + datetime.now(UTC).strftime("%Y-%m-%d-%H%M")
    report = args.out / f"{stem}.md"
    report.write_text(markdown(result), encoding="utf-8")
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result, report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result, report = run(args)
    print(f"{result['requests']} requests, {result['unexpected']} unexpected; report: {report}")
    return 1 if result["unexpected"] else 0


if __name__ == "__main__":
    sys.exit(main())
