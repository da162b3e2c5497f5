"""Where the chat service's time goes under load: py-spy samples it while loadgen drives it.

    python -m bench.profile_chat                          # c=64 JSON answers, 20 s
    python -m bench.profile_chat --stream -c 200          # SSE answers

Starts a private stack (as `make bench` does), runs `bench/loadgen.py` against Envoy's REST
port in its own process, and records the chat process with `py-spy record --format raw`
(collapsed stacks, active samples only). Writes the top frames by self and inclusive share,
a breakdown by library and by thread to bench/results/ (raw stacks to the bench cache).
py-spy comes from PyPI (in the dev extra); it needs ptrace rights on the process.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench import peers
from bench.loadgen import Job
from bench.run import MODEL, ROOT, chat_body
from bench.stack import STANDIN, clawgate_stack
from bench.targets import clawgate_target, patch_standin

# Library of a frame, from its file path: the first pattern that matches wins.
LIBRARIES = (
    ("grpc", re.compile(r"grpc|cygrpc|_cython")),
    ("protobuf", re.compile(r"google/protobuf|json_format")),
    ("aiohttp (upstream client)", re.compile(r"aiohttp|yarl|multidict")),
    ("redis client", re.compile(r"/redis/")),
    ("logging", re.compile(r"logging/|/logs\.py")),
    ("json", re.compile(r"json/")),
    ("asyncio", re.compile(r"asyncio/|selectors\.py")),
    ("services/chat", re.compile(r"services/chat/")),
    ("clawgate/common", re.compile(r"clawgate/common/")),
)
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


@dataclasses.dataclass
class Profile:
    samples: int
    self_time: Counter[str]
    inclusive: Counter[str]
    libraries: Counter[str]
    threads: Counter[str]


def frame_name(frame: str) -> tuple[str, str]:
    """("function (short/file.py)", file) of one raw frame `func (path:line)`."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip(), ""
    path = match["file"]
    short = "/".join(Path(path).parts[-2:])
    return f"{match['func']} ({short})", path


def library(path: str) -> str:
    return next((name for name, pattern in LIBRARIES if pattern.search(path)), "other")


def parse(raw: str) -> Profile:
    """Collapsed stacks (`thread;frame;...;leaf count` per line, root first)."""
    profile = Profile(0, Counter(), Counter(), Counter(), Counter())
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread, frames = (frames[0], frames[1:]) if frames[0].startswith("thread") else ("", frames)
        if not frames:
            continue
        names = [frame_name(f) for f in frames]
        profile.samples += count
        profile.threads[thread or "?"] += count
        profile.self_time[names[-1][0]] += count
        profile.libraries[library(names[-1][1])] += count
        for name in {n for n, _ in names}:
            profile.inclusive[name] += count
    return profile


def render(profile: Profile, title: str, top: int = 25) -> str:
    def table(counter: Counter[str], limit: int) -> list[str]:
        total = profile.samples or 1
        return [f"  {100 * n / total:5.1f}%  {name}" for name, n in counter.most_common(limit)]

    return "\n".join(
        [
            title,
            f"{profile.samples} active samples",
            "",
            "Self time by library (leaf frame's file):",
            *table(profile.libraries, 20),
            "",
            "By thread:",
            *table(profile.threads, 10),
            "",
            f"Top {top} frames by self time:",
            *table(profile.self_time, top),
            "",
            f"Top {top} functions by inclusive time:",
            *table(profile.inclusive, top),
            "",
        ]
    )


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy not found: pip install py-spy")
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.profile_chat",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-c", "--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=20.0, help="how long py-spy records")
    p.add_argument("--stream", action="store_true", help="SSE answers (token delay 5 ms)")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    spy = py_spy()
    name = f"profile-chat-{'stream' if args.stream else 'json'}-c{args.concurrency}"
    args.out.mkdir(parents=True, exist_ok=True)
    raw_path = peers.DEFAULT_CACHE / "profiles" / f"{name}.raw.txt"  # large: not in the repo
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    with clawgate_stack(MODEL, 0) as stack:
        upstream = stack.standins[STANDIN]
        patch_standin(
            upstream,
            {
                "num_parallel": 4096,
                "request_log_limit": 10,
                "token_delay_ms": 5 if args.stream else 0,
            },
        )
        target = clawgate_target(stack)
        job = Job(
            url=target.chat_url,
            body=chat_body(args, args.stream),
            headers=target.headers,
            stream=args.stream,
            concurrency=args.concurrency,
            requests=10_000_000,
            duration_s=args.seconds + 4,
            warmup=3,
            unique=True,
        )
        load = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert load.stdin is not None
        load.stdin.write(json.dumps(dataclasses.asdict(job)))
        load.stdin.close()
        time.sleep(2)  # past the warm-up and connection set-up
        subprocess.run(
            [
                spy,
                "record",
                "--pid",
                str(target.processes["chat"]),
                "--format",
                "raw",
                "--duration",
                str(int(args.seconds)),
                "--rate",
                str(args.rate),
                "--threads",
                "--nonblocking",
                "--output",
                str(raw_path),
            ],
            check=True,
            capture_output=True,
        )
        assert load.stdout is not None
        out = load.stdout.read()
        load.wait(timeout=args.seconds + 120)
        result = json.loads(out)
    profile = parse(raw_path.read_text(encoding="utf-8"))
    title = (
        f"chat service under c={args.concurrency} "
        f"{'SSE' if args.stream else 'JSON'} requests through Envoy for "
        f"{args.seconds:.0f} s: {result['rps']:.0f} req/s, "
        f"{result['requests'] - result['ok']} errors, x-cache {result['x_cache']}"
    )
    text = render(profile, title)
    (args.out / f"{name}.txt").write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {args.out / f'{name}.txt'} and {raw_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
