"""Defect 9 of issue 13: edge limits. Oversized headers get 431 in OpenAI's shape (once an
empty 429, which clients retry forever); slow or idle connections are closed; the number of
client connections is capped. The timing tests run a bare Envoy with short limits: what is
checked is Envoy's own behaviour under the rendered config."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from clawgate.common.config import EdgeLimits
from clawgate.common.services import SERVICES
from clawgate.launcher import envoy_config
from clawgate.launcher.processes import Child, free_ports, port_open
from clawgate.launcher.stack import Stack, envoy_binary
from tests.edge.helpers import openai_error

BareEnvoy = Callable[[EdgeLimits], int]


@pytest.fixture(scope="module")
def bare_envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BareEnvoy]:
    """Starts Envoy alone (services absent) with the given limits; returns its port."""
    children: list[Child] = []

    def start(limits: EdgeLimits) -> int:
        port, admin = free_ports(2)
        closed = "127.0.0.1:9"  # nothing listens: only Envoy's own behaviour is tested
        addrs = {s.name: closed for s in SERVICES}
        ports = envoy_config.EnvoyPorts("127.0.0.1", port, admin, addrs)
        state = tmp_path_factory.mktemp("envoy")
        config = envoy_config.write(state / "envoy.yaml", ports, limits=limits)
        argv = [envoy_binary(), "-c", str(config), "--log-level", "warn",
                "--base-id", str(admin)]  # fmt: skip
        child = Child("envoy", argv, log_path=state / "envoy.log").start()
        children.append(child)
        child.wait_ready(lambda: port_open("127.0.0.1", port), timeout=20)
        return port

    yield start
    for child in children:
        child.stop()


def _closed_by_server(sock: socket.socket, trickle: bytes | None, within_s: float) -> bytes:
    """Read until the server closes the connection (sending `trickle` between reads, as a
    slowloris client does); returns what the server sent. Fails after `within_s`."""
    received = b""
    sock.settimeout(0.2)
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if trickle is not None:
                sock.sendall(trickle)
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"connection still open after {within_s}s; got {received!r}")


SHORT = EdgeLimits(request_headers_timeout_s=1, idle_timeout_s=1)


def test_a_client_sending_headers_slowly_is_cut_off(bare_envoy: BareEnvoy) -> None:
    port = bare_envoy(SHORT)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
        # One more header line every 0.2 s would keep a server without a headers timeout
        # waiting for ever; the trickle goes on far longer than the 1 s limit.
        reply = _closed_by_server(sock, b"X-Slow: 1\r\n", within_s=15)
        assert reply.startswith(b"HTTP/1.1 408"), reply
        openai_error(408, {"content-type": "application/json"}, reply.partition(b"\r\n\r\n")[2])


def test_an_idle_connection_is_closed(bare_envoy: BareEnvoy) -> None:
    port = bare_envoy(SHORT)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        _closed_by_server(sock, None, within_s=15)


def _served_connection(port: int, within_s: float = 15) -> socket.socket:
    """A connection Envoy has accepted and answered on (retrying while a slot is taken, e.g.
    by a just-closed connection Envoy has not counted out yet)."""
    deadline = time.monotonic() + within_s
    while True:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.settimeout(5)
        try:
            sock.sendall(REQUEST)
            if sock.recv(65536).startswith(b"HTTP/1.1 404"):
                return sock
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            pass
        sock.close()
        assert time.monotonic() < deadline, "Envoy serves no new connection"
        time.sleep(0.1)


REQUEST = b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"


def test_connections_beyond_the_limit_are_refused_until_one_closes(
    bare_envoy: BareEnvoy,
) -> None:
    port = bare_envoy(EdgeLimits(max_connections=3))
    held = [_served_connection(port) for _ in range(3)]
    try:
        with socket.create_connection(("127.0.0.1", port)) as extra:
            # It may be closed before the request is even written: refused, as it should.
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                extra.sendall(REQUEST)
            assert _closed_by_server(extra, None, within_s=15) == b""
        held.pop().close()
        held.append(_served_connection(port))  # the freed slot is usable again
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize(
    "headers",
    [{"X-Big": "a" * 40_000}, {f"X-Many-{i}": "v" for i in range(120)}],
    ids=["40KB-header", "120-headers"],
)
def test_oversized_headers_get_431_in_openai_shape(stack: Stack, headers: dict[str, str]) -> None:
    reply = requests.get(
        stack.rest_url + "/api/v1/models",
        headers={"Authorization": f"Bearer {stack.token}", **headers},
        timeout=10,
    )
    assert reply.status_code == 431, reply.text
    error = openai_error(431, reply.headers, reply.content)
    assert error["code"] == "request_headers_too_large"
    assert "32 KB" in error["message"]


def test_headers_within_the_limit_reach_the_service(stack: Stack) -> None:
    # 16-30 KB once got an empty 429 from grpc's own metadata limit behind Envoy.
    for size in (17_000, 30_000):
        reply = requests.get(
            stack.rest_url + "/api/v1/models",
            headers={"Authorization": f"Bearer {stack.token}", "X-Big": "a" * size},
            timeout=10,
        )
        assert reply.status_code == 200, (size, reply.text)
