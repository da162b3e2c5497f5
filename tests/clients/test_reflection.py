"""Server reflection through Envoy's public port, as grpcurl uses it: the whole API is
described by one endpoint, behind the gateway token."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from clawgate.common.services import grpc_service_names
from clawgate.launcher.stack import Stack


def _channel(stack: Stack, token: str | None) -> grpc.Channel:
    if token is None:
        return grpc.insecure_channel(stack.grpc_target)
    # Plaintext to a loopback port with a bearer token: what grpcurl -plaintext -H does.
    credentials = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
        grpc.access_token_call_credentials(token),
    )
    return grpc.secure_channel(stack.grpc_target, credentials)


@pytest.fixture
def authorised(stack: Stack) -> Iterator[grpc.Channel]:
    with _channel(stack, stack.token) as channel:
        yield channel


def test_lists_every_public_service(authorised: grpc.Channel) -> None:
    services = set(ProtoReflectionDescriptorDatabase(authorised).get_services())
    assert set(grpc_service_names()) <= services
    assert "grpc.reflection.v1alpha.ServerReflection" in services


def test_describes_and_calls_a_method_found_by_reflection(authorised: grpc.Channel) -> None:
    """grpcurl's `describe` and a call built only from what reflection returned."""
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(authorised))
    service = pool.FindServiceByName("clawgate.agents.v1.AgentService")
    assert {m.name for m in service.methods} >= {"ListAgents", "CreateAgent", "DeleteAgent"}
    method = pool.FindServiceByName("clawgate.chat.v1.ChatService").methods_by_name["ListModels"]
    request_class = message_factory.GetMessageClass(method.input_type)
    reply_class = message_factory.GetMessageClass(method.output_type)
    call = authorised.unary_unary(
        "/clawgate.chat.v1.ChatService/ListModels",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=reply_class.FromString,
    )
    reply = json_format.MessageToDict(call(request_class(), timeout=10))
    assert "qwen3:32b" in [m["id"] for m in reply["data"]]


@pytest.mark.parametrize("token", [None, "cg-not-the-token"])
def test_needs_the_token(stack: Stack, token: str | None) -> None:
    with _channel(stack, token) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[no-untyped-call]
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_v1_reflection_is_unimplemented_so_clients_fall_back(authorised: grpc.Channel) -> None:
    """grpcurl asks grpc.reflection.v1 first and falls back to v1alpha on UNIMPLEMENTED
    (grpcio serves v1alpha only)."""
    call = authorised.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    with pytest.raises(grpc.RpcError) as refused:
        list(call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
