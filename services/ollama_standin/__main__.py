"""CLI: python -m services.ollama_standin --port 11434 --model qwen3:8b ...

Prints `ollama stand-in listening on http://HOST:PORT` (flushed) once it accepts
connections, so a parent process can wait for that line; stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from .models import ModelSpec
from .server import StandinServer
from .settings import DEFAULT_MODELS, FAIL_MODES, Settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.ollama_standin", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=11434, help="port; 0 picks a free one (default 11434)"
    )
    p.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help=f"a pulled model, repeatable (default: {', '.join(DEFAULT_MODELS)})",
    )
    p.add_argument("--no-models", action="store_true", help="start with no pulled models")
    p.add_argument(
        "--preload", action="append", default=[], metavar="NAME", help="keep NAME loaded"
    )
    p.add_argument(
        "--thinking-prefix",
        action="append",
        dest="thinking_prefixes",
        metavar="PREFIX",
        help="model-name prefix that thinks by default, repeatable (default: qwen3, deepseek-r1)",
    )
    p.add_argument("--token-delay-ms", type=float, default=5.0)
    p.add_argument("--first-token-delay-ms", type=float, default=0.0)
    p.add_argument("--load-delay-ms", type=float, default=0.0)
    p.add_argument("--num-parallel", type=int, default=1, help="OLLAMA_NUM_PARALLEL (default 1)")
    p.add_argument("--keep-alive-s", type=float, default=300.0, help="OLLAMA_KEEP_ALIVE in seconds")
    p.add_argument("--num-ctx", type=int, default=4096, help="default context length")
    p.add_argument("--fail", choices=FAIL_MODES, default=None)
    p.add_argument("--fail-times", type=int, default=None)
    p.add_argument("--cut-after", type=int, default=3)
    p.add_argument("--legacy-stream", action="store_true")
    p.add_argument("--api-error-only", action="store_true")
    p.add_argument("--old-not-found-message", action="store_true")
    p.add_argument("--think-tags-in-content", action="store_true")
    p.add_argument("--ollama-version", default="0.33.0", help="what /api/version reports")
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    settings = Settings(
        token_delay_ms=args.token_delay_ms,
        first_token_delay_ms=args.first_token_delay_ms,
        load_delay_ms=args.load_delay_ms,
        preloaded=list(args.preload),
        fail=args.fail,
        fail_times=args.fail_times,
        cut_after=args.cut_after,
        legacy_stream=args.legacy_stream,
        api_error_only=args.api_error_only,
        old_not_found_message=args.old_not_found_message,
        think_tags_in_content=args.think_tags_in_content,
        num_parallel=args.num_parallel,
        keep_alive_s=args.keep_alive_s,
        default_num_ctx=args.num_ctx,
        version=args.ollama_version,
    )
    if args.no_models:
        settings.models = []
    elif args.models:
        settings.models = [ModelSpec.from_name(name, i) for i, name in enumerate(args.models)]
    if args.thinking_prefixes:
        settings.thinking_prefixes = list(args.thinking_prefixes)
    return settings


async def serve(settings: Settings, host: str, port: int) -> None:
    server = StandinServer(settings, host, port)
    base_url = await server.start()
    print(f"ollama stand-in listening on {base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(settings, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
