"""The Clawgate stack a benchmark measures: Redis, one stand-in ollama, the three services
and Envoy on free loopback ports in a temporary directory (the launcher the tests use)."""

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
    model: str, token_delay_ms: float, log_dir: Path | None = None
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
        )  # fmt: skip
        if log_dir is not None:
            plan.log_dir = log_dir
        stack = Stack(plan)
        try:
            print("starting the stack (Redis, stand-in, services, Envoy)...", file=sys.stderr)
            stack.start()
            yield stack
        finally:
            stack.stop()
