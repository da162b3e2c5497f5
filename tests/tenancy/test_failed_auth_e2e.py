"""Failed-auth attempts are limited per client address. The guesser calls from its own
loopback address (127.0.0.2), so the lock-out never reaches the other tests (127.0.0.1)."""

from __future__ import annotations

import grpc
import requests

from clawgate.agents.v1 import agent_service_pb2 as pb
from clawgate.agents.v1 import agent_service_pb2_grpc as pb_grpc
from clawgate.common.auth_throttle import CLIENT_ADDRESS_HEADER
from tests.tenancy.conftest import FAILED_AUTH_ATTEMPTS, Caller, Tenancy

GUESSER_ADDRESS = "127.0.0.2"


def test_an_address_with_too_many_bad_tokens_gets_429_before_any_check(tenancy: Tenancy) -> None:
    alice = tenancy["alice"].from_address(GUESSER_ADDRESS)
    assert alice.call("GET", "/api/v1/agents").status_code == 200
    guesser = Caller("guesser", "cg-not-a-real-token", alice.base, alice.session)
    for _ in range(FAILED_AUTH_ATTEMPTS):
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
    # Other addresses are not locked out; anyone may still ask whether the gateway is up.
    assert tenancy["alice"].call("GET", "/api/v1/agents").status_code == 200
    assert requests.get(alice.base + "/api/v1/health", timeout=10).status_code == 200


def test_the_limit_holds_for_native_grpc_callers_too(tenancy: Tenancy) -> None:
    """Direct to the registry, as Envoy forwards a client's request with its address."""
    with grpc.insecure_channel(tenancy.stack.addrs.agents) as channel:
        stub = pb_grpc.AgentServiceStub(channel)
        for token, expected in [("cg-wrong", grpc.StatusCode.UNAUTHENTICATED)] * (
            FAILED_AUTH_ATTEMPTS
        ) + [(tenancy["alice"].token, grpc.StatusCode.RESOURCE_EXHAUSTED)]:
            md = (("authorization", f"Bearer {token}"), (CLIENT_ADDRESS_HEADER, "192.0.2.10"))
            try:
                stub.ListAgents(pb.ListAgentsRequest(), metadata=md, timeout=10)
                code = grpc.StatusCode.OK
            except grpc.RpcError as err:
                code = err.code()
            assert code is expected
