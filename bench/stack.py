"""The Clawgate stack a benchmark measures: Redis, one stand-in ollama, the services (one or
several chat processes) and Envoy on free loopback ports in a temporary directory (the
launcher the tests use)."""

from __future__ import annotations

import contextlib
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clawgate.launcher.stack import Stack, local_plan

STANDIN = "bench"  # the stand-in's name in the plan


@contextlib.contextmanager
def clawgate_stack(
    model: str, token_delay_ms: float, log_dir: Path | None = None, chat_processes: int = 1
) -> Iterator[Stack]:
    def config_for(urls: dict[str, str]) -> dict[str, Any]:
        return {
            "providers": {
                STANDIN: {
                    "baseUrl": urls[STANDIN] + "/v1",
                    "apiKey": "ollama",
                    "api": "openai-completions",
                    # The stand-in is no GPU: it answers any number at once, like the peers
                    # assume. A real ollama worker keeps the default (OLLAMA_NUM_PARALLEL).
                    "maxConcurrency": 4096,
                    "models": [{"id": model}],
                }
            },
            "cache": {"namespace": f"bench-{uuid.uuid4().hex[:8]}"},
        }

    with tempfile.TemporaryDirectory(prefix="clawgate-bench-") as tmp:
        plan = local_plan(
            Path(tmp), {STANDIN: (model,)}, config_for,
            extra_env={"CLAWGATE_LOG_LEVEL": "warning"}, token_delay_ms=int(token_delay_ms),
            chat_processes=chat_processes,
        )  # fmt: skip
        if log_dir is not None:
            plan.log_dir = log_dir
        stack = Stack(plan)
        try:
            print(f"starting the stack (Redis, stand-in, services with {chat_processes} chat "
                  "process(es), Envoy)...", file=sys.stderr)  # fmt: skip
            stack.start()
            yield stack
        finally:
            stack.stop()
