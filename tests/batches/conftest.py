"""A stack of its own for the batch tests: they restart the chat service and measure
latency under load, which the shared session stack must not see."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from clawgate.launcher.stack import Stack, local_plan
from tests.stack_config import STANDIN_MODELS, gateway_config

TOKEN_DELAY_MS = 10  # the stand-in's per-token delay: a line takes a noticeable time


def batch_config(standins: dict[str, str]) -> dict[str, Any]:
    config = gateway_config(standins)
    config["chat"] |= {"workerConcurrency": 4, "batchConcurrencyPerWorker": 2}
    return config


@pytest.fixture(scope="module")
def batch_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    plan = local_plan(
        tmp_path_factory.mktemp("batch-stack"),
        STANDIN_MODELS,
        batch_config,
        token_delay_ms=TOKEN_DELAY_MS,
    )
    with Stack(plan) as running:
        yield running


@pytest.fixture(scope="module")
def client(batch_stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=batch_stack.rest_url + "/v1", api_key=batch_stack.token, max_retries=0
    )
