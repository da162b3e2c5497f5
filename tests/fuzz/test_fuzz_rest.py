"""Property-based fuzzing of the REST surface through the real stack (Envoy, services,
Redis, stand-in workers): chat, agents, models, cache and health get random JSON and raw
bodies, headers, path segments (percent-escapes, bad bytes) and query strings.

The rule for every reply: no 5xx except a deliberate 503/504, no hang (the request
timeout), every error OpenAI-shaped; and the neighbour streams that run all along finish.
"""

from __future__ import annotations

import json
import string
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clawgate.launcher.stack import Stack
from tests.fuzz.client import Reply, send, violations
from tests.fuzz.conftest import NeighbourLoop

pytestmark = pytest.mark.usefixtures("neighbour")

# --- building blocks ---------------------------------------------------------------------

MODELS = ["qwen3:32b", "gemma3:4b", "qwen3:8b", "ghost:7b", "llama3.2:latest", "agent:fuzz"]
ROLES = ["system", "developer", "user", "assistant", "tool", "function"]

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=15,
)  # fmt: skip


def _maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly plausible values, sometimes anything at all."""
    return st.one_of(valid, valid, json_value)


content_parts = st.lists(
    st.fixed_dictionaries({"type": _maybe(st.just("text")), "text": _maybe(st.text())}),
    max_size=3,
)
message = st.fixed_dictionaries(
    {
        "role": _maybe(st.sampled_from(ROLES)),
        "content": st.one_of(st.text(max_size=60), content_parts, json_value),
    },
    optional={
        "name": _maybe(st.text(max_size=10)),
        "tool_call_id": _maybe(st.text(max_size=10)),
        "tool_calls": json_value,
    },
)

chat_body = st.fixed_dictionaries(
    {
        "model": _maybe(st.sampled_from(MODELS)),
        "messages": _maybe(st.lists(message, min_size=1, max_size=3)),
    },
    optional={
        "stream": _maybe(st.booleans()),
        # Small answers keep the run fast; the stand-in writes one token per few ms.
        "max_tokens": _maybe(st.integers(-3, 40)),
        "max_completion_tokens": _maybe(st.integers(-3, 40)),
        "temperature": _maybe(st.floats(-1, 3)),
        "top_p": _maybe(st.floats(-1, 2)),
        "stop": _maybe(st.lists(st.text(max_size=5), max_size=3)),
        "seed": _maybe(st.integers(-(2**63), 2**63)),
        "n": _maybe(st.integers(0, 3)),
        "tools": json_value,
        "tool_choice": json_value,
        "response_format": _maybe(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "json_object", "json_schema", "xml"])}
            )
        ),
        "stream_options": _maybe(st.fixed_dictionaries({"include_usage": st.booleans()})),
        "reasoning_effort": _maybe(st.sampled_from(["low", "high", "none", "extreme"])),
        "keep_alive": json_value,
        "metadata": json_value,
        "logprobs": _maybe(st.booleans()),
    },
).map(lambda body: {**body, "max_tokens": 20} if "max_tokens" not in body else body)

agent_body = st.fixed_dictionaries(
    {},
    optional={
        "name": _maybe(st.text(max_size=30)),
        "model": _maybe(st.sampled_from(MODELS)),
        "description": _maybe(st.text(max_size=50)),
        "system_prompt": _maybe(st.text(max_size=50)),
        "config": _maybe(st.fixed_dictionaries({}, optional={
            "temperature": json_value, "max_tokens": json_value, "stop": json_value})),
        "etag": json_value,
        "id": json_value,
    },
)  # fmt: skip


def percent_all(data: bytes) -> bytes:
    return b"".join(b"%%%02X" % byte for byte in data)


SAFE = string.ascii_letters + string.digits + "-._~:@!$&'()*+,;="
ODD_SEGMENTS = [b"%", b"%zz", b"%f", b"..", b".", b"%2F", b"%00", b"agent:%ff", b"agent:",
                b"a" * 300, b"%C0%AF", b"%ED%A0%80", b"agt_" + b"0" * 26]  # fmt: skip
segment = st.one_of(
    st.text(max_size=30).map(lambda t: quote(t, safe="").encode()),
    st.binary(min_size=1, max_size=12).map(percent_all),  # any bytes, invalid UTF-8 too
    st.text(alphabet=SAFE, min_size=1, max_size=30).map(str.encode),
    st.sampled_from(ODD_SEGMENTS),
    # Raw bytes, not percent-encoded (all but what ends the request line).
    st.binary(min_size=1, max_size=8).map(lambda b: bytes(c for c in b if c not in b" \r\n?#")),
)
query_value = st.one_of(segment, st.integers(-(2**40), 2**40).map(lambda n: str(n).encode()))
query = st.lists(
    st.tuples(st.sampled_from([b"page_size", b"page_token", b"model", b"token", b"x"]) | segment,
              query_value),
    max_size=3,
).map(lambda pairs: b"&".join(k + b"=" + v for k, v in pairs))  # fmt: skip

# Routes that take a path segment or query: (method, template); {} is the segment.
PATH_ROUTES = [
    ("GET", b"/api/v1/models/{}"),
    ("GET", b"/v1/models/{}"),
    ("GET", b"/api/v1/agents/{}"),
    ("DELETE", b"/api/v1/agents/{}"),
    ("PATCH", b"/api/v1/agents/{}"),
    ("GET", b"/api/v1/{}"),
    ("GET", b"/api/v1/agents"),
    ("GET", b"/api/v1/models"),
    ("DELETE", b"/api/v1/cache"),
    ("GET", b"/api/v1/cache/stats"),
    ("GET", b"/api/v1/health"),
    ("POST", b"/api/v1/chat/completions"),
]

header_name = st.one_of(
    st.sampled_from([b"content-type", b"accept", b"cache-control", b"x-request-id",
                     b"x-request-timeout", b"idempotency-key", b"if-match", b"if-none-match",
                     b"accept-encoding", b"user-agent", b"x-forwarded-for", b"origin",
                     b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding", b"te",
                     b"x-error-json", b"x-http-status", b"x-envoy-original-path",
                     b"transfer-encoding", b"expect", b"upgrade", b"connection"]),
    st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1,
            max_size=20).map(lambda t: b"x-fuzz-" + t.encode()),
)  # fmt: skip
header_value = st.one_of(
    st.text(alphabet=string.printable.strip("\r\n\x0b\x0c"), max_size=80).map(str.encode),
    st.binary(max_size=20).map(lambda b: bytes(c for c in b if c not in b"\r\n")),
    st.sampled_from([b"application/json", b"text/plain", b"application/grpc", b"no-store",
                     b"no-cache", b"0", b"-1", b"1e9", b"abc", b"*", b'"x"', b"gzip"]),
)  # fmt: skip
headers = st.lists(st.tuples(header_name, header_value), max_size=6)
auth = st.sampled_from(["valid"] * 6 + ["missing", "garbage", "basic", "tabbed"])


def _auth(stack: Stack, kind: str) -> list[tuple[bytes, bytes]]:
    token = stack.token.encode()
    return {
        "valid": [(b"authorization", b"Bearer " + token)],
        "missing": [],
        "garbage": [(b"authorization", b"Bearer " + token[::-1])],
        "basic": [(b"authorization", b"Basic " + token)],
        "tabbed": [(b"authorization", b"Bearer \t" + token + b"\t")],
    }[kind]


def _check(reply: Reply, what: str) -> None:
    problems = violations(reply)
    assert not problems, f"{what} -> {reply.status} {problems}: {reply.body[:500]!r}"


def _json(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode()


CHAT = b"/api/v1/chat/completions"
JSON = [(b"content-type", b"application/json")]

# --- properties --------------------------------------------------------------------------


@settings(settings.get_profile("fuzz"))
@given(body=chat_body, ascii_only=st.booleans(), kind=auth)
def test_chat_json_bodies(fuzz_stack: Stack, body: dict[str, Any], ascii_only: bool,
                          kind: str) -> None:  # fmt: skip
    data = _json(body, ascii_only)
    reply = send(fuzz_stack.plan.port, "POST", CHAT, [*_auth(fuzz_stack, kind), *JSON], data)
    _check(reply, f"POST chat {data[:300]!r}")


@settings(settings.get_profile("fuzz"))
@given(
    data=st.one_of(
        st.binary(max_size=300),
        json_value.map(lambda v: json.dumps(v).encode()),
        chat_body.map(lambda b: json.dumps(b).encode()).flatmap(
            lambda raw: st.integers(0, len(raw)).map(lambda cut: raw[:cut])
        ),
    ),
    content_type=st.sampled_from([b"application/json", b"text/plain", b"", b"application/x"]),
)
def test_chat_raw_bodies(fuzz_stack: Stack, data: bytes, content_type: bytes) -> None:
    extra = [(b"content-type", content_type)] if content_type else []
    reply = send(fuzz_stack.plan.port, "POST", CHAT, [*_auth(fuzz_stack, "valid"), *extra], data)
    _check(reply, f"POST chat raw {data[:300]!r}")


@settings(settings.get_profile("fuzz"))
@given(
    body=st.one_of(agent_body, json_value),
    method=st.sampled_from(["POST", "PATCH"]),
    target=segment,
    ascii_only=st.booleans(),
    kind=auth,
)
def test_agent_bodies(fuzz_stack: Stack, body: Any, method: str, target: bytes,
                      ascii_only: bool, kind: str) -> None:  # fmt: skip
    path = b"/api/v1/agents" + (b"/" + target if method == "PATCH" else b"")
    data = _json(body, ascii_only)
    reply = send(fuzz_stack.plan.port, method, path, [*_auth(fuzz_stack, kind), *JSON], data)
    _check(reply, f"{method} {path[:200]!r} {data[:300]!r}")


@settings(settings.get_profile("fuzz"))
@given(route=st.sampled_from(PATH_ROUTES), seg=segment, q=query, kind=auth)
def test_paths_and_queries(fuzz_stack: Stack, route: tuple[str, bytes], seg: bytes, q: bytes,
                           kind: str) -> None:  # fmt: skip
    method, template = route
    path = template.replace(b"{}", seg) + (b"?" + q if q else b"")
    body = b"{}" if method in ("PATCH", "POST") else None
    reply = send(fuzz_stack.plan.port, method, path, [*_auth(fuzz_stack, kind), *JSON], body)
    _check(reply, f"{method} {path[:300]!r}")


@settings(settings.get_profile("fuzz"))
@given(route=st.sampled_from(PATH_ROUTES), extra=headers, kind=auth)
def test_headers(fuzz_stack: Stack, route: tuple[str, bytes], extra: list[tuple[bytes, bytes]],
                 kind: str) -> None:  # fmt: skip
    method, template = route
    path = template.replace(b"{}", b"qwen3:32b")
    body = None
    if method == "POST":
        body = json.dumps({"model": "qwen3:32b", "max_tokens": 10,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()  # fmt: skip
    elif method == "PATCH":
        body = b"{}"
    reply = send(fuzz_stack.plan.port, method, path, [*_auth(fuzz_stack, kind), *extra], body)
    _check(reply, f"{method} {path!r} headers {extra!r}")


def test_neighbour_streams_ran_alongside(neighbour: NeighbourLoop) -> None:
    # The loop's own check runs at module teardown; here: it really overlapped the fuzzing.
    assert neighbour.results, "no neighbour stream finished while fuzzing"
