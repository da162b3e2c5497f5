"""Defect 1 of issue 13: an oversized invalid value must give a short 400 naming the
parameter, never large error metadata that makes Envoy reset the HTTP/2 connection to the
service (and with it every other client's live stream)."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import grpc
import pytest

from clawgate.agents.v1 import agent_service_pb2 as agents_pb
from clawgate.agents.v1 import agent_service_pb2_grpc as agents_grpc
from clawgate.chat.v1 import chat_service_pb2 as chat_pb
from clawgate.chat.v1 import chat_service_pb2_grpc as chat_grpc
from clawgate.launcher.stack import Stack
from tests.edge.helpers import Neighbours, openai_error

# 30 KB once gave a misleading 503, 70 KB a dropped connection; 300 KB is past any header
# allowance Envoy could be given, so only the source (short messages) can make it pass.
SIZES = (30_000, 70_000, 300_000)


def _bad_requests(big: str, agent_id: str) -> list[tuple[str, str, dict[str, Any], str]]:
    """(method, path, JSON body, param the 400 must name)."""
    chat = "/api/v1/chat/completions"
    return [
        ("POST", chat, {"model": "qwen3:32b", "messages": [{"role": big, "content": "hi"}]},
         "messages[0].role"),
        ("POST", chat, {"model": "qwen3:32b", "messages": [{"role": "user", "content": "hi"}],
                        "response_format": {"type": big}}, "response_format.type"),
        ("POST", "/api/v1/agents", {"name": f"big-{uuid.uuid4().hex[:8]}", "model": big},
         "model"),
        ("PATCH", f"/api/v1/agents/{agent_id}", {"model": big}, "model"),
    ]  # fmt: skip


@pytest.mark.parametrize("size", SIZES)
async def test_a_huge_bad_value_is_a_short_400_and_neighbours_finish(
    stack: Stack, size: int
) -> None:
    auth = {"Authorization": f"Bearer {stack.token}"}
    big = "r" * size
    async with aiohttp.ClientSession() as http:
        async with http.post(stack.rest_url + "/api/v1/agents", headers=auth,
                             json={"name": f"big-{uuid.uuid4().hex[:8]}",
                                   "model": "qwen3:32b"}) as reply:  # fmt: skip
            assert reply.status == 200, await reply.text()
            agent_id = (await reply.json())["id"]
        neighbours = Neighbours(stack.rest_url, stack.token)
        await neighbours.start(http)
        for method, path, body, param in _bad_requests(big, agent_id):
            async with http.request(method, stack.rest_url + path, json=body,
                                    headers=auth) as reply:  # fmt: skip
                raw = await reply.read()
                assert reply.status == 400, (method, path, reply.status, raw[:300])
                error = openai_error(reply.status, reply.headers, raw)
                assert error["param"] == param
                assert error["type"] == "invalid_request_error"
                assert f"({size} characters)" in error["message"]
        await neighbours.assert_all_done()


@pytest.mark.parametrize("direct", [False, True], ids=["via-envoy", "direct"])
async def test_native_grpc_gets_invalid_argument_for_a_huge_value(
    stack: Stack, direct: bool
) -> None:
    big = "r" * 300_000
    meta = (("authorization", f"Bearer {stack.token}"),)
    chat_target = stack.addrs.chat if direct else stack.grpc_target
    agents_target = stack.addrs.agents if direct else stack.grpc_target
    async with grpc.aio.insecure_channel(chat_target) as channel:
        message = chat_pb.ChatMessage(role=big)
        message.content.string_value = "hi"
        params = chat_pb.ChatCompletionParams(model="qwen3:32b", messages=[message])
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await chat_grpc.ChatServiceStub(channel).CreateChatCompletion(
                chat_pb.CreateChatCompletionRequest(params=params), metadata=meta, timeout=20
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert len(caught.value.details() or "") < 1100
    async with grpc.aio.insecure_channel(agents_target) as channel:
        agent = agents_pb.Agent(name=f"big-{uuid.uuid4().hex[:8]}", model=big)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await agents_grpc.AgentServiceStub(channel).CreateAgent(
                agents_pb.CreateAgentRequest(agent=agent), metadata=meta, timeout=20
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
