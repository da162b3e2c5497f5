"""One stack for the fuzz tests, with neighbour streams running for the whole run.

`FUZZ_EXAMPLES` sets the examples per property (default: a short CI run); `make fuzz` runs
a long one.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
from hypothesis import HealthCheck, settings

from clawgate.launcher.stack import Stack, local_plan
from tests.stack_config import STANDIN_MODELS, gateway_config

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))

settings.register_profile(
    "fuzz",
    max_examples=EXAMPLES,
    # Network round trips vary with machine load; a hang is caught by the request timeout.
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)


@pytest.fixture(scope="package")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: fuzzing creates agents and purges caches other tests rely on."""
    plan = local_plan(tmp_path_factory.mktemp("fuzz"), STANDIN_MODELS, gateway_config)
    stack = Stack(plan)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@dataclass
class NeighbourLoop:
    """Streaming chats by a well-behaved client, one after another, while the fuzzer runs;
    every one must end with [DONE]."""

    stack: Stack
    results: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="neighbour", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.results.append(self._one())

    def _one(self) -> str:
        body = {
            "model": "qwen3:32b",
            "stream": True,
            "max_tokens": 200,
            "messages": [{"role": "user", "content": f"neighbour {uuid.uuid4().hex}"}],
        }
        headers = {"Authorization": f"Bearer {self.stack.token}", "Cache-Control": "no-store"}
        try:
            with requests.post(self.stack.rest_url + "/api/v1/chat/completions", json=body,
                               headers=headers, stream=True, timeout=60) as reply:  # fmt: skip
                text = b"".join(reply.iter_content(None))
        except requests.RequestException as exc:
            return f"failed: {exc!r}"
        if reply.status_code != 200 or not text.rstrip().endswith(b"data: [DONE]"):
            return f"HTTP {reply.status_code}: ...{text[-300:]!r}"
        return "ok"


@pytest.fixture(scope="package")
def neighbour(fuzz_stack: Stack) -> Iterator[NeighbourLoop]:
    loop = NeighbourLoop(fuzz_stack)
    loop.start()
    yield loop
    loop.stop()
    failed = [r for r in loop.results if r != "ok"]
    assert loop.results, "the neighbour stream never ran"
    assert not failed, f"{len(failed)} of {len(loop.results)} neighbour streams broke: {failed[:3]}"
