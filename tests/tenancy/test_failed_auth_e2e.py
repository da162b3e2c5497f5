"""Failed-auth attempts are limited per client address (its own stack: it locks out
127.0.0.1, the address every test calls from)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
import requests

from clawgate.agents.v1 import agent_service_pb2 as pb
from clawgate.agents.v1 import agent_service_pb2_grpc as pb_grpc
from clawgate.common.auth_throttle import CLIENT_ADDRESS_HEADER
from tests.tenancy.conftest import Caller, Tenancy, tenancy_stack

ATTEMPTS = 3


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenancy]:
    settings = {"attempts": ATTEMPTS, "windowSeconds": 60}
    with tenancy_stack(tmp_path_factory.mktemp("guarded"), settings) as running:
        yield running


def test_an_address_with_too_many_bad_tokens_gets_429_before_any_check(guarded: Tenancy) -> None:
    alice = guarded["alice"]
    assert alice.call("GET", "/api/v1/agents").status_code == 200
    guesser = Caller("guesser", "cg-not-a-real-token", alice.base)
    for _ in range(ATTEMPTS):
        reply = guesser.call("GET", "/api/v1/agents")
        assert reply.status_code == 401, reply.text
    # Now even a valid token from this address waits; a spoofed address header is
    # overwritten by Envoy, so it does not help.
    for headers in ({}, {CLIENT_ADDRESS_HEADER: "10.1.2.3"}):
        reply = alice.call("GET", "/api/v1/agents", headers=headers)
        assert reply.status_code == 429, reply.text
        error = reply.json()["error"]
        assert error["type"] == "rate_limit_error" and error["code"] == "auth_rate_limited"
        assert 1 <= int(reply.headers["retry-after"]) <= 60
        assert alice.token not in reply.text
    # Anyone may still ask whether the gateway is up.
    assert requests.get(alice.base + "/api/v1/health", timeout=10).status_code == 200


def test_other_addresses_are_not_locked_out(guarded: Tenancy) -> None:
    """Direct to the registry, as Envoy forwards another client's request."""
    with grpc.insecure_channel(guarded.stack.addrs.agents) as channel:
        stub = pb_grpc.AgentServiceStub(channel)
        md = (
            ("authorization", f"Bearer {guarded['alice'].token}"),
            (CLIENT_ADDRESS_HEADER, "192.0.2.10"),
        )
        reply = stub.ListAgents(pb.ListAgentsRequest(), metadata=md, timeout=10)
    assert reply.total_size >= 0
