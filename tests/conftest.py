"""Fixtures shared by the whole suite: real Redis, and the whole stack started once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clawgate.launcher.processes import Child, free_port, port_open, redis_child
from clawgate.launcher.stack import Stack, local_plan
from tests.stack_config import STANDIN_MODELS, gateway_config


@dataclass
class PrivateRedis:
    """A redis-server child with its own port and data directory (append-only file on),
    which its owner may stop, freeze and restart on the same port and data."""

    port: int
    data_dir: Path
    log_path: Path
    child: Child | None = None

    @classmethod
    def in_dir(cls, tmp: Path) -> PrivateRedis:
        port = free_port()
        return cls(port, tmp / f"redis-{port}", tmp / f"redis-{port}.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.child = redis_child(self.port, self.data_dir, self.log_path).start()
        self.child.wait_ready(lambda: port_open("127.0.0.1", self.port))

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free port, shared by the whole session."""
    server = PrivateRedis.in_dir(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server only this test uses, so it can be stopped, frozen and restarted."""
    server = PrivateRedis.in_dir(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole gateway, started once per session: Redis, three stand-in ollama workers,
    the chat, agents and health services, and Envoy in front of them."""
    state = tmp_path_factory.mktemp("stack")
    plan = local_plan(state, STANDIN_MODELS, gateway_config)
    with Stack(plan) as running:
        yield running
