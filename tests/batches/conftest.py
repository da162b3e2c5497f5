"""A stack of its own for the batch tests (one for the package): they restart the chat
service and measure latency under load, which the shared session stack must not see."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests

from clawgate.launcher.stack import Stack, local_plan
from tests.stack_config import STANDIN_MODELS, gateway_config

TOKEN_DELAY_MS = 10  # the stand-in's per-token delay: a line takes a noticeable time


def batch_config(standins: dict[str, str]) -> dict[str, Any]:
    config = gateway_config(standins)
    config["chat"] |= {"workerConcurrency": 4, "batchConcurrencyPerWorker": 2}
    # A killed chat process leaves its single-flight locks behind; identical work waits
    # them out (the killed-mid-batch test re-runs the lines it had in flight).
    config["cache"] |= {"singleFlightWaitSeconds": 5}
    return config


@pytest.fixture(scope="package")
def batch_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    plan = local_plan(
        tmp_path_factory.mktemp("batch-stack"),
        STANDIN_MODELS,
        batch_config,
        token_delay_ms=TOKEN_DELAY_MS,
    )
    with Stack(plan) as running:
        # The workers run 4 generations at once (OLLAMA_NUM_PARALLEL=4), as the gateway's
        # workerConcurrency says: the gateway, not the worker, decides who waits.
        for url in running.standins.values():
            reply = requests.patch(f"{url}/_standin/settings", json={"num_parallel": 4}, timeout=5)
            assert reply.status_code == 200, reply.text
        yield running


@pytest.fixture(scope="package")
def client(batch_stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=batch_stack.rest_url + "/v1", api_key=batch_stack.token, max_retries=0
    )
