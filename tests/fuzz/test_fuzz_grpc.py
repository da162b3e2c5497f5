"""Property-based fuzzing of the native gRPC surface, through Envoy and direct to each
service: every method gets random bytes as its request message (undecodable ones, and ones
that decode to odd field values). No call may fail with INTERNAL or UNKNOWN (a crash), and
none may hang; UNAVAILABLE and DEADLINE_EXCEEDED are the deliberate 503/504."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from hypothesis import given, settings
from hypothesis import strategies as st

from clawgate.agents.v1 import agent_service_pb2
from clawgate.chat.v1 import chat_service_pb2
from clawgate.health.v1 import health_service_pb2
from clawgate.launcher.stack import Stack
from tests.fuzz.client import REQUEST_TIMEOUT_S

pytestmark = pytest.mark.usefixtures("neighbour")

METHODS: list[tuple[str, MethodDescriptor]] = [
    (cluster, method)
    for cluster, module in (("chat", chat_service_pb2), ("agents", agent_service_pb2),
                            ("health", health_service_pb2))
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]  # fmt: skip
CRASHES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


@pytest.fixture(scope="module")
def channels(fuzz_stack: Stack) -> Iterator[dict[str, grpc.Channel]]:
    targets = {"envoy": fuzz_stack.grpc_target, "chat": fuzz_stack.addrs.chat,
               "agents": fuzz_stack.addrs.agents, "health": fuzz_stack.addrs.health}  # fmt: skip
    opened = {name: grpc.insecure_channel(target) for name, target in targets.items()}
    yield opened
    for channel in opened.values():
        channel.close()


@settings(settings.get_profile("fuzz"))
@given(
    index=st.integers(0, len(METHODS) - 1),
    data=st.binary(max_size=200),
    via_envoy=st.booleans(),
    with_token=st.sampled_from([True, True, True, False]),
)
def test_random_request_bytes(
    fuzz_stack: Stack, channels: dict[str, grpc.Channel], index: int, data: bytes,
    via_envoy: bool, with_token: bool,
) -> None:  # fmt: skip
    cluster, method = METHODS[index]
    channel = channels["envoy" if via_envoy else cluster]
    path = f"/{method.containing_service.full_name}/{method.name}"
    metadata = (("authorization", f"Bearer {fuzz_stack.token}"),) if with_token else ()
    try:
        if method.server_streaming:
            for _ in channel.unary_stream(path, None, None)(data, metadata=metadata,
                                                timeout=REQUEST_TIMEOUT_S):  # fmt: skip
                pass
        else:
            channel.unary_unary(path, None, None)(
                data, metadata=metadata, timeout=REQUEST_TIMEOUT_S
            )
    except grpc.RpcError as err:
        code = err.code()  # type: ignore[attr-defined]
        assert code not in CRASHES, f"{path} {data[:200]!r} -> {code}: {err.details()}"  # type: ignore[attr-defined]
        assert code is not grpc.StatusCode.DEADLINE_EXCEEDED, f"{path} {data[:200]!r} hung"
