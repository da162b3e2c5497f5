"""Defect 8 of issue 13: bad bytes in paths, query strings and JSON bodies are client
errors. Invalid UTF-8 (`%ff`) once gave an empty 500 even without a token; now the token is
checked first (401), then the request is refused with an OpenAI-shaped 400."""

from __future__ import annotations

import grpc
import pytest
import requests

from clawgate.launcher.stack import Stack
from tests.edge.helpers import openai_error
from tests.fuzz.client import send

BAD_UTF8_PATHS = [
    ("GET", "/api/v1/agents/%ff"),
    ("GET", "/api/v1/agents/ok%c3%28"),
    ("GET", "/api/v1/models/%ff"),
    ("GET", "/api/v1/models/agent:%fe%ff"),
    ("GET", "/api/v1/agents?page_token=%ff"),
    ("DELETE", "/api/v1/cache?model=%ff"),
    ("PATCH", "/api/v1/agents/%ff"),
    ("DELETE", "/api/v1/agents/%ff"),
]


@pytest.mark.parametrize(("method", "path"), BAD_UTF8_PATHS)
def test_invalid_utf8_in_a_path_is_401_without_token_then_400(
    stack: Stack, method: str, path: str
) -> None:
    url = stack.rest_url + path
    body = b"{}" if method == "PATCH" else None
    anonymous = requests.request(method, url, data=body, timeout=10)
    assert anonymous.status_code == 401, anonymous.text
    assert openai_error(401, anonymous.headers, anonymous.content)["type"] == (
        "authentication_error"
    )
    auth = {"Authorization": f"Bearer {stack.token}"}
    reply = requests.request(method, url, data=body, headers=auth, timeout=10)
    assert reply.status_code == 400, reply.text
    error = openai_error(400, reply.headers, reply.content)
    assert error["code"] == "invalid_encoding"
    assert "UTF-8" in error["message"]


async def test_native_grpc_with_undecodable_bytes_is_unauthenticated_then_invalid(
    stack: Stack,
) -> None:
    # GetAgentRequest{id: b"\xff"} — protobuf refuses to decode a string that is not UTF-8.
    raw = b"\x0a\x01\xff"
    async with grpc.aio.insecure_channel(stack.addrs.agents) as channel:
        call = channel.unary_unary(
            "/clawgate.agents.v1.AgentService/GetAgent",
            request_serializer=None,
            response_deserializer=None,
        )
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await call(raw, timeout=10)
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(raw, metadata=(("authorization", f"Bearer {stack.token}"),), timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


CHAT_BODIES = {
    "nested-1000": b'{"model":"qwen3:32b","messages":[{"role":"user","content":"hi"}],'
    b'"metadata":' + b"[" * 1000 + b"]" * 1000 + b"}",
    "nested-150": b'{"model":"qwen3:32b","messages":[{"role":"user","content":"hi"}],'
    b'"metadata":' + b'{"a":' * 150 + b"1" + b"}" * 150 + b"}",
    "lone-surrogate": b'{"model":"qwen3:32b","messages":[{"role":"user","content":"\\ud800"}]}',
    "lone-low-surrogate-key": b'{"model":"qwen3:32b","messages":[{"role":"user",'
    b'"content":"hi"}],"metadata":{"\\udc00":1}}',
    "nan": b'{"model":"qwen3:32b","messages":[{"role":"user","content":"hi"}],"temperature":NaN}',
    "huge-number": b'{"model":"qwen3:32b","messages":[{"role":"user","content":"hi"}],'
    b'"tools":[{"type":"function","function":{"name":"f","parameters":{"x":1e999}}}]}',
}


@pytest.mark.parametrize("name", CHAT_BODIES)
@pytest.mark.parametrize("stream", [False, True])
def test_unforwardable_json_in_a_chat_body_is_400(stack: Stack, name: str, stream: bool) -> None:
    body = CHAT_BODIES[name]
    if stream:
        body = body.replace(b'"model":', b'"stream":true,"model":', 1)
    reply = requests.post(
        stack.rest_url + "/api/v1/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"},
        timeout=20,
    )
    assert reply.status_code == 400, reply.text
    assert openai_error(400, reply.headers, reply.content)["code"] == "invalid_json"


@pytest.mark.parametrize(
    "body",
    [
        b'{"name":"x\\ud800","model":"qwen3:32b"}',
        b'{"name":"deep","model":"qwen3:32b","config":' + b'{"stop":' * 1000 + b"1"
        + b"}" * 1000 + b"}",
    ],
    ids=["lone-surrogate", "nested-1000"],
)  # fmt: skip
def test_unreadable_json_in_an_agent_body_is_400(stack: Stack, body: bytes) -> None:
    auth = {"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"}
    for method, path in (("POST", ""), ("PATCH", "/some-agent")):
        reply = requests.request(
            method, stack.rest_url + "/api/v1/agents" + path, data=body, headers=auth, timeout=10
        )
        assert reply.status_code == 400, reply.text
        openai_error(400, reply.headers, reply.content)


@pytest.mark.parametrize("value", ["", "abc", "1S", "99999999999H"])
@pytest.mark.parametrize("name", ["grpc-timeout", "grpc-encoding"])
def test_grpc_protocol_headers_from_a_rest_client_are_ignored(
    stack: Stack, name: str, value: str
) -> None:
    # Found by the fuzzer: they reached the service as gRPC's own headers (500).
    reply = requests.get(
        stack.rest_url + "/api/v1/models/qwen3:32b",
        headers={"Authorization": f"Bearer {stack.token}", name: value},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("request_id", ["0\t0", "x\ty\tz", "a" * 5000])
def test_an_odd_request_id_does_not_break_calls_between_services(
    stack: Stack, request_id: str
) -> None:
    # Found by the fuzzer: listing models forwards x-request-id to the agent registry, and
    # grpc refuses to send a tab (500).
    reply = requests.get(
        stack.rest_url + "/api/v1/models",
        headers={"Authorization": f"Bearer {stack.token}", "X-Request-Id": request_id},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        (b"/api/v1/agents/\xff", []),
        (b"/api/v1/models/a\x7fb", []),
        (b"/api/v1/models", [(b"transfer-encoding", b"gzip, chunked")]),
        (b"/api/v1/models", [(b"transfer-encoding", b"identity")]),
        (b"/api/v1/models", [(b"x-a", b"a\x00b")]),
    ],
)
def test_what_envoy_refuses_itself_is_a_4xx_in_openai_shape(
    stack: Stack, path: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    # An unsupported Transfer-Encoding was a text/plain 501 (a server error for a client's
    # request).
    token = stack.token.encode()
    reply = send(stack.plan.port, "GET", path, [(b"authorization", b"Bearer " + token), *extra])
    assert 400 <= reply.status < 500, (reply.status, reply.body)
    openai_error(reply.status, reply.headers, reply.body)


@pytest.mark.parametrize("token", [None, "valid"])
def test_an_http1_request_claiming_grpc_gets_rest_errors(stack: Stack, token: str | None) -> None:
    # Found by the fuzzer: `content-type: application/grpc` on HTTP/1.1 got a gRPC-form reply
    # (an empty application/grpc body) instead of an OpenAI error.
    auth = [(b"authorization", b"Bearer " + stack.token.encode())] if token else []
    reply = send(stack.plan.port, "GET", b"/api/v1/models/%ff",
                 [*auth, (b"content-type", b"application/grpc")])  # fmt: skip
    assert 400 <= reply.status < 500, (reply.status, reply.body)
    openai_error(reply.status, reply.headers, reply.body)
