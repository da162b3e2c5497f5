"""The sessions API through Envoy, REST and gRPC: append, get, list with pages, delete,
authentication, and clear errors for bad names, roles, sizes and page tokens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest

from clawgate.launcher.stack import Stack
from clawgate.sessions.v1 import session_service_pb2 as pb
from clawgate.sessions.v1 import session_service_pb2_grpc as pb_grpc
from services.sessions.servicer import MAX_APPEND, MAX_MESSAGES
from tests.console.api import Rest


def new_id() -> str:
    return f"api-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def rest(console_stack: Stack) -> Rest:
    return Rest(console_stack)


@pytest.fixture(scope="module")
def grpc_stub(console_stack: Stack) -> Iterator[pb_grpc.SessionServiceStub]:
    with grpc.insecure_channel(console_stack.grpc_target) as channel:
        yield pb_grpc.SessionServiceStub(channel)


def error(reply: object, status: int, code: str) -> dict[str, object]:
    assert reply.status_code == status, reply.text  # type: ignore[attr-defined]
    body: dict[str, object] = reply.json()["error"]  # type: ignore[attr-defined]
    assert body["code"] == code, body
    return body


def test_append_get_list_delete_over_rest(rest: Rest) -> None:
    sid = new_id()
    answer = {"role": "assistant", "content": "hi", "reasoning": "think", "model": "qwen3:32b",
              "finish_reason": "stop", "cache_status": "MISS"}  # fmt: skip
    appended = rest.append(sid, {"role": "user", "content": "你好 <b>"}, answer)
    assert appended["session"]["name"] == f"sessions/{sid}"
    assert appended["session"]["message_count"] == 2
    session = rest.ok("GET", f"/sessions/{sid}")
    assert [(m["role"], m["content"]) for m in session["messages"]] == [
        ("user", "你好 <b>"), ("assistant", "hi")
    ]  # fmt: skip
    stored = session["messages"][1]
    assert (stored["reasoning"], stored["model"], stored["cache_status"]) == (
        "think", "qwen3:32b", "MISS"
    )  # fmt: skip
    assert session["create_time"] <= session["update_time"]
    listed = rest.ok("GET", "/sessions", params={"page_size": 1000})
    assert f"sessions/{sid}" in [s["name"] for s in listed["sessions"]]
    assert rest.call("DELETE", f"/sessions/{sid}").status_code == 200
    error(rest.call("GET", f"/sessions/{sid}"), 404, "session_not_found")
    error(rest.call("DELETE", f"/sessions/{sid}"), 404, "session_not_found")


def test_pages_walk_every_session_once(rest: Rest) -> None:
    prefix = f"page-{uuid.uuid4().hex[:6]}"
    ids = [f"{prefix}-{i}" for i in range(5)]
    for sid in ids:
        rest.append(sid, {"role": "user", "content": sid})
    seen: list[str] = []
    token = ""
    while True:
        page = rest.ok("GET", "/sessions", params={"page_size": 2, "page_token": token})
        assert len(page["sessions"]) <= 2
        seen += [s["name"].removeprefix("sessions/") for s in page["sessions"]]
        token = page["next_page_token"]
        if not token:
            break
    assert [s for s in seen if s.startswith(prefix)] == ids
    assert len(seen) == len(set(seen)) == page["total_size"]
    error(rest.call("GET", "/sessions", params={"page_token": "!!"}), 400, "invalid_page_token")
    error(rest.call("GET", "/sessions", params={"page_size": -1}), 400, "invalid_value")


def test_bad_input_gets_clear_errors_and_changes_nothing(rest: Rest) -> None:
    sid = new_id()
    bad_role = error(rest.call("POST", f"/sessions/{sid}/messages",
                               json={"messages": [{"role": "robot", "content": "x"}]}),
                     400, "invalid_value")  # fmt: skip
    assert bad_role["param"] == "messages[0].role" and "'user'" in str(bad_role["message"])
    error(rest.call("POST", f"/sessions/{sid}/messages", json={"messages": []}), 400,
          "invalid_value")  # fmt: skip
    too_many = [{"role": "user", "content": "x"}] * (MAX_APPEND + 1)
    error(rest.call("POST", f"/sessions/{sid}/messages", json={"messages": too_many}), 400,
          "invalid_value")  # fmt: skip
    huge = {"role": "user", "content": "x" * ((1 << 20) + 1)}
    error(rest.call("POST", f"/sessions/{sid}/messages", json={"messages": [huge]}), 400,
          "invalid_value")  # fmt: skip
    error(rest.call("GET", f"/sessions/{sid}"), 404, "session_not_found")  # nothing stored
    error(rest.call("GET", "/sessions/bad%20name"), 400, "invalid_session_name")


def test_a_full_session_refuses_more_and_keeps_what_it_has(rest: Rest) -> None:
    sid = new_id()
    batch = [{"role": "user", "content": "m"}] * MAX_APPEND
    for _ in range(MAX_MESSAGES // MAX_APPEND):
        rest.append(sid, *batch)
    body = error(rest.call("POST", f"/sessions/{sid}/messages",
                           json={"messages": [{"role": "user", "content": "one more"}]}),
                 400, "session_full")  # fmt: skip
    assert "start a new session" in str(body["message"])
    assert rest.ok("GET", f"/sessions/{sid}")["message_count"] == MAX_MESSAGES
    rest.call("DELETE", f"/sessions/{sid}")


def test_sessions_need_the_token(console_stack: Stack) -> None:
    import requests

    url = console_stack.rest_url + "/api/v1/sessions"
    error(requests.get(url, timeout=10), 401, "missing_token")
    error(requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10), 401,
          "invalid_api_key")  # fmt: skip


def test_grpc_clients_get_the_same_api(
    grpc_stub: pb_grpc.SessionServiceStub, console_stack: Stack
) -> None:
    auth = (("authorization", f"Bearer {console_stack.token}"),)
    name = f"sessions/{new_id()}"
    reply = grpc_stub.AppendMessages(
        pb.AppendMessagesRequest(session=name, messages=[pb.Message(role="user", content="hi")]),
        metadata=auth, timeout=10,
    )  # fmt: skip
    assert reply.session.message_count == 1
    got = grpc_stub.GetSession(pb.GetSessionRequest(name=name), metadata=auth, timeout=10)
    assert [m.content for m in got.messages] == ["hi"]
    with pytest.raises(grpc.RpcError) as caught:
        grpc_stub.GetSession(pb.GetSessionRequest(name="main"), metadata=auth, timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as caught:
        grpc_stub.ListSessions(pb.ListSessionsRequest(), timeout=10)
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    grpc_stub.DeleteSession(pb.DeleteSessionRequest(name=name), metadata=auth, timeout=10)
