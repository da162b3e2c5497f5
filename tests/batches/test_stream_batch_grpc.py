"""StreamBatchChatCompletions through Envoy (native gRPC on the public port): results
come back as they finish, matched by the client's ids, with a bounded number in flight."""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc

from clawgate.batches.v1 import batch_service_pb2 as pb
from clawgate.batches.v1 import batch_service_pb2_grpc as pb_grpc
from clawgate.launcher.stack import Stack
from tests.batches.helpers import MODEL

Request = pb.StreamBatchChatCompletionsRequest


def request(custom_id: str, body: object) -> Request:
    return Request(custom_id=custom_id, body=json.dumps(body).encode())


async def test_stream_batch_answers_each_request_by_its_id(batch_stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    asks: dict[str, dict[str, Any]] = {
        f"s-{i}": {"model": MODEL, "messages": [{"role": "user", "content": f"{tag}x{i}"}],
                   "max_tokens": 40 - i}  # different lengths: they finish out of order
        for i in range(24)
    }  # fmt: skip
    requests = [request(cid, body) for cid, body in asks.items()]
    requests.append(
        request("bad-model", {"model": "nope:1b", "messages": [{"role": "user", "content": "x"}]})
    )
    requests.append(Request(custom_id="not-json", body=b"{"))
    metadata = (("authorization", f"Bearer {batch_stack.token}"),)

    async with grpc.aio.insecure_channel(batch_stack.grpc_target) as channel:
        stub = pb_grpc.BatchServiceStub(channel)
        call = stub.StreamBatchChatCompletions(iter(requests), metadata=metadata, timeout=60)
        results = {r.custom_id: r async for r in call}
        assert await call.code() == grpc.StatusCode.OK

    assert set(results) == {*asks, "bad-model", "not-json"}
    assert list(results) != [r.custom_id for r in requests]  # as they finished, not as sent
    for custom_id, ask in asks.items():
        result = results[custom_id]
        assert result.status_code == 200
        body = json.loads(result.body)
        assert body["object"] == "chat.completion"
        assert ask["messages"][0]["content"] in body["choices"][0]["message"]["content"]
    assert results["bad-model"].status_code == 404
    assert json.loads(results["bad-model"].body)["error"]["code"] == "model_not_found"
    assert results["not-json"].status_code == 400


async def test_stream_batch_needs_a_token(batch_stack: Stack) -> None:
    async with grpc.aio.insecure_channel(batch_stack.grpc_target) as channel:
        stub = pb_grpc.BatchServiceStub(channel)
        call = stub.StreamBatchChatCompletions(iter([request("a", {})]), timeout=10)
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        else:
            raise AssertionError("a call without a token must fail")
