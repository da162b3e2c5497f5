"""Fixtures shared by the whole suite: real Redis, and the whole stack started once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawgate.launcher.processes import Child, free_port, port_open, redis_child


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
