"""Tenancy through Envoy with several tokens: scopes, cache namespaces, purge, agents.

Each isolation rule is checked with two tokens (alice from a token-file line, bob from
config `auth.tokens`), and against the admin token the launcher writes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from clawgate.chat.v1 import chat_service_pb2 as chat_pb
from clawgate.chat.v1 import chat_service_pb2_grpc as chat_grpc
from tests.tenancy.conftest import Caller, Tenancy, unique


def error_of(reply: Any, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    body: dict[str, Any] = reply.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    return body


def make_agent(caller: Caller, **fields: Any) -> dict[str, Any]:
    body = {"name": unique("agent"), "model": "qwen3:32b", "system_prompt": "be brief", **fields}
    reply = caller.call("POST", "/api/v1/agents", json=body)
    assert reply.status_code == 200, reply.text
    agent: dict[str, Any] = reply.json()
    return agent


def listed_ids(caller: Caller) -> set[str]:
    reply = caller.call("GET", "/api/v1/agents", params={"page_size": 1000})
    assert reply.status_code == 200, reply.text
    return {a["id"] for a in reply.json()["agents"]}


# -- scopes ----------------------------------------------------------------------------
def test_a_token_without_the_scope_gets_403_permission_error(tenancy: Tenancy) -> None:
    reader = tenancy["reader"]  # scopes: chat
    assert reader.chat(unique("hello")).status_code == 200
    for method, path in [("GET", "/api/v1/agents"), ("DELETE", "/api/v1/cache")]:
        body = error_of(reader.call(method, path), 403)
        assert body["type"] == "permission_error" and body["code"] == "permission_denied"
        assert "reader" in body["message"] and tenancy["reader"].token not in body["message"]
    body = error_of(reader.call("POST", "/api/v1/agents", json={"name": unique()}), 403)
    assert "agents:write" in body["message"]


def test_native_grpc_gets_permission_denied(tenancy: Tenancy) -> None:
    with grpc.insecure_channel(tenancy.stack.grpc_target) as channel:
        stub = chat_grpc.ChatServiceStub(channel)
        md = (("authorization", f"Bearer {tenancy['alice'].token}"),)
        with pytest.raises(grpc.RpcError) as failed:
            stub.PurgeCache(chat_pb.PurgeCacheRequest(), metadata=md, timeout=10)
    assert failed.value.code() is grpc.StatusCode.PERMISSION_DENIED


# -- cache -----------------------------------------------------------------------------
def test_one_token_never_gets_another_tokens_cached_answer(tenancy: Tenancy) -> None:
    alice, bob = tenancy["alice"], tenancy["bob"]
    prompt = unique("cached")
    assert alice.chat(prompt).headers["x-cache"] == "MISS"
    assert alice.chat(prompt).headers["x-cache"] == "HIT"
    # no-store first (so bob has stored nothing yet), then a plain request.
    for headers in ({"Cache-Control": "no-store"}, {}):
        reply = bob.chat(prompt, headers=headers)
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-cache"] != "HIT", headers
    # Bob's own answer (stored by his plain call) is his to reuse.
    assert bob.chat(prompt).headers["x-cache"] == "HIT"
    # no-cache: do not answer from the cache (RFC 9111), even for the same token.
    assert alice.chat(prompt, headers={"Cache-Control": "no-cache"}).headers["x-cache"] != "HIT"


def test_only_admin_may_purge_the_cache(tenancy: Tenancy) -> None:
    for name in ("alice", "bob", "reader"):
        body = error_of(tenancy[name].call("DELETE", "/api/v1/cache"), 403)
        assert body["type"] == "permission_error"
    reply = tenancy["admin"].call("DELETE", "/api/v1/cache")
    assert reply.status_code == 200, reply.text


# -- agents ----------------------------------------------------------------------------
def test_a_private_agent_is_invisible_to_other_tokens(tenancy: Tenancy) -> None:
    alice, bob, admin = tenancy["alice"], tenancy["bob"], tenancy["admin"]
    agent = make_agent(alice)
    assert agent["owner"] == "alice" and agent["shared"] is False
    path = f"/api/v1/agents/{agent['id']}"
    for reply in (
        bob.call("GET", path),
        bob.call("GET", f"/api/v1/agents/{agent['name']}"),
        bob.call("PATCH", path, json={"description": "mine now"}),
        bob.call("DELETE", path),
    ):
        assert error_of(reply, 404)["code"] == "agent_not_found"
    assert agent["id"] not in listed_ids(bob)
    assert agent["id"] in listed_ids(alice) and agent["id"] in listed_ids(admin)
    # Chat through the agent: the owner may, the other token cannot even see it.
    assert alice.chat("hi", model=f"agent:{agent['name']}").status_code == 200
    assert error_of(bob.chat("hi", model=f"agent:{agent['name']}"), 404)["param"] == "model"
    # Admins manage every agent.
    reply = admin.call("PATCH", path, json={"description": "checked by admin"})
    assert reply.status_code == 200 and reply.json()["owner"] == "alice", reply.text
    assert admin.call("DELETE", path).status_code == 200


def test_a_shared_agent_is_usable_by_all_but_changed_only_by_its_owner(tenancy: Tenancy) -> None:
    alice, bob, reader = tenancy["alice"], tenancy["bob"], tenancy["reader"]
    agent = make_agent(alice, shared=True)
    path = f"/api/v1/agents/{agent['id']}"
    assert bob.call("GET", path).json()["shared"] is True
    assert agent["id"] in listed_ids(bob)
    assert bob.chat("hi", model=f"agent:{agent['name']}").status_code == 200
    body = error_of(bob.call("PATCH", path, json={"description": "bob's"}), 403)
    assert body["type"] == "permission_error"
    assert error_of(bob.call("DELETE", path), 403)["code"] == "permission_denied"
    # A chat-only token may not read agents, so it cannot use them either.
    assert error_of(reader.chat("hi", model=f"agent:{agent['name']}"), 403)["param"] == "model"
    # The owner can make it private again; then bob loses it.
    reply = alice.call("PATCH", path, json={"shared": False})
    assert reply.status_code == 200 and reply.json()["shared"] is False, reply.text
    assert bob.call("GET", path).status_code == 404
    assert agent["id"] not in listed_ids(bob)


def test_agent_lookups_during_chat_use_each_callers_own_token(tenancy: Tenancy) -> None:
    """The resolver caches lookups for a second: right after alice resolved her private
    agent, bob must not be served alice's lookup (it used alice's credentials)."""
    alice, bob = tenancy["alice"], tenancy["bob"]
    agent = make_agent(alice)
    for _ in range(3):
        assert alice.chat(unique("q"), model=f"agent:{agent['name']}").status_code == 200
        reply = bob.chat(unique("q"), model=f"agent:{agent['name']}")
        assert error_of(reply, 404)["code"] == "agent_not_found"


def test_idempotency_keys_are_per_token(tenancy: Tenancy) -> None:
    alice, bob = tenancy["alice"], tenancy["bob"]
    key = unique("idem")
    first = alice.call("POST", "/api/v1/agents", json={"name": unique(), "model": "qwen3:32b"},
                       headers={"Idempotency-Key": key})  # fmt: skip
    assert first.status_code == 200, first.text
    other = bob.call("POST", "/api/v1/agents", json={"name": unique(), "model": "qwen3:32b"},
                     headers={"Idempotency-Key": key})  # fmt: skip
    assert other.status_code == 200, other.text
    assert other.json()["id"] != first.json()["id"] and other.json()["owner"] == "bob"


# -- token management ------------------------------------------------------------------
def test_tokens_created_and_revoked_with_the_cli_work_without_a_restart(
    tenancy: Tenancy,
) -> None:
    env = {**os.environ, "CLAWGATE_TOKEN_FILE": str(tenancy.stack.plan.token_file)}

    def clawgate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clawgate.cli", "token", *args],
                              env=env, capture_output=True, text=True, timeout=30)  # fmt: skip

    created = clawgate("--create", "carol", "--scopes", "chat,agents:read")
    assert created.returncode == 0, created.stderr
    carol = Caller("carol", created.stdout.strip(), tenancy["admin"].base)
    listed = clawgate("--list").stdout
    assert "carol\tagents:read,chat" in listed and carol.token not in listed
    refused = clawgate("--create", "dave", "--scopes", "root")
    assert refused.returncode == 2 and "unknown scope root" in refused.stderr

    def status() -> int:
        return carol.call("GET", "/api/v1/agents").status_code

    wait_until(lambda: status() == 200)  # the services re-read the token file
    assert error_of(carol.call("POST", "/api/v1/agents", json={"name": unique()}), 403)
    assert clawgate("--revoke", "carol").returncode == 0
    wait_until(lambda: status() == 401)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
