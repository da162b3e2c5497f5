"""`make bench`: Clawgate next to the direct upstream, LiteLLM and Portkey, side by side.

    python -m bench.run                      # everything, ~10-15 minutes
    python -m bench.run --no-peers --smoke   # the harness itself in ~20 s (CI)

Starts a private Clawgate stack with its ollama stand-in, installs (once, into a cache
outside the repo) and starts the peers in front of the same stand-in, then runs every
scenario against every target in rounds, the target order rotated each round, each run by
`bench/loadgen.py` in its own process. Writes bench/results/bench-<time>.{md,json} and
latest.{md,json}. Benchmarks are not tests: nothing here fails on a slow number.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import peers, procstat, report
from bench.loadgen import Job
from bench.targets import Target, open_scaling, open_targets, patch_standin
from clawgate.common.config import DEFAULT_CHAT_PROCESSES, MAX_CHAT_PROCESSES

ROOT = Path(__file__).resolve().parent.parent
MODEL = "llama3.2:1b"  # a model the stand-in does not make "think": same text everywhere


@dataclass(frozen=True)
class Scenario:
    key: str
    concurrency: int
    requests: int
    duration_s: float
    stream: bool = False
    cache: bool = False  # the same request every time, stored by the warm-up
    timeout_s: float = 30.0
    warmup: int = 3
    rounds: int | None = None  # heavy scenarios run in fewer rounds
    cpu: bool = False  # measure the target's CPU during it
    grpc: str | None = None  # "direct" | "envoy": Clawgate's gRPC API, not REST


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    s = 0.1 if args.smoke else args.scale  # durations and counts shrink together
    n = max(1, int(args.streams * (0.05 if args.smoke else 1)))
    grpc = [
        Scenario(
            f"grpc-{way}-c{c}", c, max(10, int(250 * s)) if c == 1 else 100_000, 4 * s, grpc=way
        )
        for way in ("direct", "envoy")
        for c in (1, 16)
    ]
    return [
        Scenario("c1", 1, max(10, int(250 * s)), 6 * s),
        Scenario("c16", 16, 100_000, 4 * s),
        Scenario("c64", 64, 100_000, 6 * s, cpu=True),
        Scenario("stream", 1, max(5, int(50 * s)), 4 * s, stream=True),
        Scenario("cache", 1, max(10, int(250 * s)), 4 * s, cache=True),
        Scenario(
            "streams",
            n,
            n,
            args.streams_timeout,
            stream=True,
            warmup=0,
            timeout_s=args.streams_timeout,
            rounds=1,
        ),
        *grpc,
    ]


def chat_body(args: argparse.Namespace, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say something about benchmarks."}],
        "max_tokens": args.max_tokens,
        "temperature": 0.7,
    }
    if stream:
        body["stream"] = True
    return body


def job_for(scenario: Scenario, target: Target, args: argparse.Namespace) -> Job | None:
    """The load of one scenario on one target, or None where it does not apply."""
    if target.unavailable:
        return None
    if scenario.grpc:
        if scenario.grpc not in target.grpc:
            return None
        url, headers = target.grpc[scenario.grpc], target.headers
    elif scenario.cache:
        if target.cache_headers is None:
            return None
        url, headers = target.chat_url, {**target.headers, **target.cache_headers}
    else:
        url, headers = target.chat_url, target.headers
    return Job(
        url=url,
        body=chat_body(args, scenario.stream),
        kind="grpc" if scenario.grpc else "http",
        headers=headers,
        stream=scenario.stream,
        concurrency=scenario.concurrency,
        requests=scenario.requests,
        duration_s=scenario.duration_s,
        timeout_s=scenario.timeout_s,
        warmup=scenario.warmup,
        unique=not scenario.cache,
    )


def run_loadgen(job: Job) -> dict[str, Any]:
    """One load run in its own process; its result JSON."""
    limit = job.duration_s + job.timeout_s * (job.warmup + 1) + 60
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(dataclasses.asdict(job)),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=limit,
    )
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run_with_cpu(job: Job, target: Target) -> dict[str, Any]:
    """One load run with the CPU seconds of the target's processes during it."""
    before = procstat.snapshot(target.processes)
    result = run_loadgen(job)
    after = procstat.snapshot(target.processes)
    by_process = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    result["cpu_by_process"] = by_process
    result["cpu_s"] = sum(by_process.values())
    result["counted"] = result["requests"] + job.warmup
    return result


def measure(targets: list[Target], upstream: str, args: argparse.Namespace) -> report.Results:
    results: report.Results = {}
    wanted = {k for k in args.scenarios.split(",") if k}
    plan = [s for s in scenarios(args) if not wanted or s.key in wanted]
    for round_no in range(args.rounds):
        shift = round_no % len(targets)
        order = targets[shift:] + targets[:shift]
        for scenario in plan:
            if scenario.rounds is not None and round_no >= scenario.rounds:
                continue
            delay = args.stream_token_delay_ms if scenario.stream else args.token_delay_ms
            patch_standin(upstream, {"token_delay_ms": delay})
            for target in order:
                job = job_for(scenario, target, args)
                if job is None:
                    continue
                result = run_with_cpu(job, target) if scenario.cpu else run_loadgen(job)
                result["round"] = round_no
                results.setdefault(scenario.key, {}).setdefault(target.key, []).append(result)
                print(
                    f"round {round_no + 1} {scenario.key:<16} {target.key:<16} "
                    f"ok {result['ok']}/{result['requests']} {result['rps']:.0f} req/s",
                    file=sys.stderr,
                )
    return results


def scaling_scenario(args: argparse.Namespace) -> Scenario:
    """c=64 against Clawgate run with 1, 2, 4 chat processes (same load as `c64`)."""
    c64 = next(s for s in scenarios(args) if s.key == "c64")
    return dataclasses.replace(c64, key=report.SCALING)


def measure_scaling(
    stacks: list[tuple[int, Target, str]], args: argparse.Namespace
) -> report.Results:
    """The scaling scenario on every process count in rounds, the order rotated each
    round; results under `report.SCALING`, keyed by the process count."""
    scenario = scaling_scenario(args)
    per_count: dict[str, list[dict[str, Any]]] = {}
    for round_no in range(args.rounds):
        shift = round_no % len(stacks)
        for count, target, upstream in stacks[shift:] + stacks[:shift]:
            patch_standin(upstream, {"token_delay_ms": args.token_delay_ms})
            job = job_for(scenario, target, args)
            assert job is not None
            result = run_with_cpu(job, target)
            result["round"], result["chat_processes"] = round_no, count
            per_count.setdefault(str(count), []).append(result)
            print(
                f"round {round_no + 1} {scenario.key:<16} {count} chat process(es) "
                f"ok {result['ok']}/{result['requests']} {result['rps']:.0f} req/s "
                f"cpu {result['cpu_s']:.1f} s",
                file=sys.stderr,
            )
    return {report.SCALING: per_count}


def process_table(target: Target, results: report.Results) -> list[dict[str, Any]]:
    """CPU per 1,000 requests (c=64, all rounds) and peak RSS of each process."""
    rounds = results.get("c64", {}).get(target.key, [])
    counted = sum(r.get("counted", 0) for r in rounds)
    cpu: dict[str, float] = {}
    for r in rounds:
        for name, seconds in r.get("cpu_by_process", {}).items():
            cpu[name] = cpu.get(name, 0.0) + seconds
    return [
        {
            "name": name,
            "pid": target.processes.get(name),
            "cpu_s_per_1k": cpu[name] / counted * 1000 if counted and name in cpu else None,
            "peak_rss_mb": rss,
        }
        for name, rss in procstat.peaks(target.processes).items()
    ]


def failure_notes(target: Target, results: report.Results) -> list[str]:
    """What a target answered where it failed, and known failures its own log explains."""
    notes = []
    for scenario, per_target in results.items():
        rounds = per_target.get(target.key, [])
        failed = sum(r["requests"] - r["ok"] for r in rounds)
        sample = next((r["error_sample"] for r in rounds if r.get("error_sample")), None)
        if failed:
            answer = f", answer `{sample.strip()[:120]}`" if sample else ""
            notes.append(
                f"{scenario}: {failed} of {sum(r['requests'] for r in rounds)} "
                f"requests failed ({report.failure_text(rounds)}{answer})"
            )
    if target.log is None or not target.log.exists():
        return notes
    text = target.log.read_text(encoding="utf-8", errors="replace")
    if "TypeError: immutable" in text:
        notes.append(
            "its log shows `TypeError: immutable` for the failed streams "
            "(Portkey issues #1389/#1550, Node 20)"
        )
    return notes


def build(targets: list[Target], results: report.Results, meta: dict[str, Any]) -> dict[str, Any]:
    keys = [t.key for t in targets]
    table = report.table_json(report.table(results, keys))
    extra = [
        {
            "metric": "peak RSS MB, all processes",
            "cells": {
                t.key: f"{sum(p['peak_rss_mb'] for p in t_procs):.0f}"
                for t, t_procs in ((t, process_table(t, results)) for t in targets)
                if t_procs
            },
        },
        *report.scaling_rows(results),
    ]
    described = {}
    for t in targets:
        notes = [*t.notes, *failure_notes(t, results)]
        if t.unavailable:
            notes.insert(0, f"not run: {t.unavailable}")
        described[t.key] = {
            "label": t.label + (" (not run)" if t.unavailable else ""),
            "notes": notes,
            "processes": [] if t.unavailable else process_table(t, results),
        }
    return {
        "meta": meta,
        "targets": described,
        "table": table,
        "extra_rows": extra,
        "ratios": report.ratios(table, keys),
        "results": results,
    }


def write(data: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    md, js = out / f"bench-{stamp}.md", out / f"bench-{stamp}.json"
    text = report.markdown(data)
    md.write_text(text, encoding="utf-8")
    js.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    (out / "latest.md").write_text(text, encoding="utf-8")
    (out / "latest.json").write_text(js.read_text(encoding="utf-8"), encoding="utf-8")
    return md, js


def loadavg() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--scale", type=float, default=1.0, help="multiply durations and counts")
    p.add_argument("--smoke", action="store_true", help="tiny counts, one round (CI)")
    p.add_argument("--streams", type=int, default=1000, help="concurrent streams scenario")
    p.add_argument("--streams-timeout", type=float, default=60.0, help="seconds per stream")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--token-delay-ms", type=float, default=0.0, help="stand-in, non-streaming")
    p.add_argument("--stream-token-delay-ms", type=float, default=5.0, help="stand-in, streams")
    p.add_argument("--no-peers", action="store_true", help="Clawgate and direct only")
    p.add_argument("--litellm", default=peers.LITELLM_VERSION, help="version, or '' for none")
    p.add_argument(
        "--portkey",
        default=",".join(peers.PORTKEY_VERSIONS),
        help="comma-separated versions, or '' for none",
    )
    p.add_argument("--peer-cache", type=Path, default=peers.DEFAULT_CACHE)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument(
        "--scaling",
        default="1,2,4",
        help="chat process counts of the scaling rows (c=64), comma-separated; '' for none"
        " (--smoke: 1,2)",
    )
    p.add_argument(
        "--scenarios", default="", help="comma-separated scenario keys to run (default: all)"
    )
    p.add_argument(
        "--chat-processes",
        type=int,
        default=DEFAULT_CHAT_PROCESSES,
        help="chat processes of the Clawgate column (default: the gateway's default,"
        f" {DEFAULT_CHAT_PROCESSES})",
    )
    args = p.parse_args(argv)
    if not 1 <= args.chat_processes <= MAX_CHAT_PROCESSES:
        p.error(f"--chat-processes must be 1-{MAX_CHAT_PROCESSES}")
    if args.smoke:
        args.rounds, args.streams_timeout = 1, min(args.streams_timeout, 20.0)
        args.scaling = "1,2" if args.scaling == "1,2,4" else args.scaling
    try:
        args.scaling = sorted({int(n) for n in args.scaling.split(",") if n.strip()})
    except ValueError:
        p.error(f"--scaling takes process counts like 1,2,4, got {args.scaling!r}")
    if any(n < 1 or n > MAX_CHAT_PROCESSES for n in args.scaling):
        p.error(f"--scaling: each count must be 1-{MAX_CHAT_PROCESSES}")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    wanted = {k for k in args.scenarios.split(",") if k}
    known = [s.key for s in scenarios(args)] + [report.SCALING]
    if wanted - set(known):
        p.error(f"unknown scenarios {sorted(wanted - set(known))}: choose from {', '.join(known)}")
    if wanted and report.SCALING not in wanted:
        args.scaling = []
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, load_start = time.monotonic(), loadavg()
    versions = [] if args.no_peers else [v for v in args.portkey.split(",") if v]
    litellm = None if args.no_peers else (args.litellm or None)
    with contextlib.ExitStack() as exits:
        logs = args.peer_cache / "logs" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        print(f"logs in {logs}", file=sys.stderr)
        targets, upstream = open_targets(
            exits, MODEL, logs, args.peer_cache, litellm, versions, args.chat_processes
        )
        # Enough parallel generations that the stand-in never queues; a short request log.
        patch_standin(upstream, {"num_parallel": 4096, "request_log_limit": 10})
        results = measure(targets, upstream, args)
        if args.scaling:
            # Started after the side-by-side rounds, so they never load the machine then.
            clawgate = next(t for t in targets if t.key == "clawgate")
            stacks = open_scaling(
                exits, MODEL, logs, args.scaling, clawgate, upstream, args.chat_processes
            )
            for _, _, url in stacks:
                patch_standin(url, {"num_parallel": 4096, "request_log_limit": 10})
            results.update(measure_scaling(stacks, args))
        meta = {
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpus": os.cpu_count(),
            "loadavg_start": load_start,
            "loadavg_end": loadavg(),
            "elapsed_s": time.monotonic() - started,
            "model": MODEL,
            "max_tokens": args.max_tokens,
            "token_delay_ms": args.token_delay_ms,
            "stream_token_delay_ms": args.stream_token_delay_ms,
            "rounds": args.rounds,
            "streams": args.streams,
            "smoke": args.smoke,
            "notes": [],
        }
        data = build(targets, results, meta)
    md, js = write(data, args.out)
    print(md.read_text(encoding="utf-8"))
    print(f"wrote {md} and {js}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
