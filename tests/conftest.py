"""Fixtures shared by the whole suite: real Redis, and the whole stack started once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawgate.common.auth import ensure_token_file
from clawgate.common.config import ServiceAddrs
from clawgate.launcher.processes import Child, free_port, port_open, redis_child
from clawgate.launcher.stack import Stack, StackPlan, StandinPlan, write_json
from tests.stack_config import STANDIN_MODELS, gateway_config


@contextlib.contextmanager
def running_redis(tmp: Path) -> Iterator[tuple[str, Child]]:
    port = free_port()
    child = redis_child(port, tmp / f"redis-{port}", tmp / f"redis-{port}.log").start()
    try:
        child.wait_ready(lambda: port_open("127.0.0.1", port))
        yield f"redis://127.0.0.1:{port}/0", child
    finally:
        child.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free port, for the whole session."""
    with running_redis(tmp_path_factory.mktemp("redis")) as (url, _):
        yield url


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole gateway, started once per session: Redis, three stand-in ollama workers,
    the chat, agents and health services, and Envoy in front of them."""
    state = tmp_path_factory.mktemp("stack")
    standins = {
        name: StandinPlan(port=free_port(), models=models)
        for name, models in STANDIN_MODELS.items()
    }
    urls = {name: f"http://127.0.0.1:{s.port}" for name, s in standins.items()}
    redis_port = free_port()
    token_file = state / "token"
    ensure_token_file(token_file)
    plan = StackPlan(
        state_dir=state,
        config_path=write_json(state / "clawgate.json", gateway_config(urls)),
        token_file=token_file,
        host="127.0.0.1",
        port=free_port(),
        admin_port=free_port(),
        addrs=ServiceAddrs(
            chat=f"127.0.0.1:{free_port()}",
            agents=f"127.0.0.1:{free_port()}",
            health=f"127.0.0.1:{free_port()}",
        ),
        redis_port=redis_port,
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        standins=standins,
    )
    running = Stack(plan)
    try:
        running.start()
        yield running
    finally:
        running.stop()
