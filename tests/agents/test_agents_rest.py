"""The agent registry through Envoy, as REST clients (curl, Postman) and gRPC clients use it:
every endpoint, every error in OpenAI's shape, paging, concurrent edits, idempotent
creates, and survival of registry and Redis restarts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import grpc
import pytest
import requests

from clawgate.agents.v1 import agent_service_pb2 as pb
from clawgate.agents.v1 import agent_service_pb2_grpc as pb_grpc
from clawgate.launcher.stack import Stack

SEED = {
    "description": "answers questions about our product",
    "model": "qwen3:32b",
    "config": {"temperature": 0.7, "max_tokens": 2000},
}


class Api:
    """`requests` against /api/v1/agents with the gateway token."""

    def __init__(self, stack: Stack) -> None:
        self.base = stack.rest_url + "/api/v1/agents"
        self.headers = {"Authorization": f"Bearer {stack.token}"}

    def call(self, method: str, path: str = "", **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.request(method, self.base + path, headers=headers, timeout=10, **kwargs)

    def create(self, **body: Any) -> dict[str, Any]:
        reply = self.call("POST", json={"model": "qwen3:32b", **body})
        assert reply.status_code == 200, reply.text
        created: dict[str, Any] = reply.json()
        return created


@pytest.fixture
def api(stack: Stack) -> Api:
    return Api(stack)


def unique(prefix: str = "rest") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def openai_error(reply: requests.Response, status: int, param: str | None) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    assert not any(h.startswith("grpc-") for h in reply.headers)
    body = reply.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == param
    error: dict[str, Any] = body["error"]
    return error


def test_create_with_the_seed_body_as_written(api: Api) -> None:
    reply = api.call("POST", json={"name": unique(), **SEED})
    assert reply.status_code == 200, reply.text
    agent = reply.json()
    assert set(agent) == {
        "id", "name", "description", "model", "system_prompt", "config",
        "created_at", "updated_at", "etag", "shared", "owner", "tools",
    }  # fmt: skip
    assert agent["owner"] == "admin" and agent["shared"] is False  # the plain token is admin
    assert agent["id"].startswith("agt_")
    assert agent["description"] == SEED["description"]
    assert agent["system_prompt"] == ""
    # Numbers are JSON numbers, times are RFC 3339 strings: usable as-is.
    assert agent["config"] == {"temperature": 0.7, "max_tokens": 2000, "stop": []}
    created = datetime.fromisoformat(agent["created_at"])
    assert created.tzinfo is not None
    assert abs((datetime.now(created.tzinfo) - created).total_seconds()) < 60
    assert agent["updated_at"] == agent["created_at"]
    assert isinstance(agent["etag"], str) and agent["etag"]


def test_get_by_id_and_by_name_including_non_latin_names(api: Api) -> None:
    latin = api.create(name=unique())
    chinese = api.create(name="客服助手-" + uuid.uuid4().hex[:6])
    for agent in (latin, chinese):
        for ref in (agent["id"], quote(agent["name"])):
            reply = api.call("GET", "/" + ref)
            assert reply.status_code == 200, reply.text
            assert reply.json() == agent


def test_list_shows_created_agents_with_total(api: Api) -> None:
    created = api.create(name=unique())
    reply = api.call("GET", params={"page_size": 1000})
    assert reply.status_code == 200, reply.text
    page = reply.json()
    assert set(page) == {"agents", "next_page_token", "total_size"}
    assert isinstance(page["total_size"], int) and page["total_size"] >= 1
    assert created in page["agents"]


def test_patch_without_mask_changes_only_the_fields_in_the_body(api: Api) -> None:
    created = api.create(name=unique(), system_prompt="be brief", **SEED)
    reply = api.call("PATCH", "/" + created["id"], json={"config": {"temperature": 0}})
    assert reply.status_code == 200, reply.text
    updated = reply.json()
    assert updated["config"] == {"temperature": 0, "max_tokens": 2000, "stop": []}
    assert {k: updated[k] for k in ("name", "description", "system_prompt", "model")} == {
        k: created[k] for k in ("name", "description", "system_prompt", "model")
    }
    assert updated["etag"] != created["etag"]
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] >= created["updated_at"]
    assert api.call("GET", "/" + created["id"]).json() == updated


def test_patch_with_update_mask_query_parameter(api: Api) -> None:
    created = api.create(name=unique(), system_prompt="be brief", **SEED)
    reply = api.call(
        "PATCH",
        "/" + created["name"],
        params={"update_mask": "description,config.max_tokens,system_prompt"},
        json={"description": "only this", "model": "gemma3:4b"},
    )
    assert reply.status_code == 200, reply.text
    updated = reply.json()
    assert updated["description"] == "only this"
    assert updated["model"] == "qwen3:32b"  # in the body, not in the mask
    assert updated["system_prompt"] == ""  # in the mask, not in the body: cleared
    assert updated["config"] == {"temperature": 0.7, "stop": []}


def test_patch_rename_keeps_names_unique(api: Api) -> None:
    first, second = api.create(name=unique()), api.create(name=unique())
    reply = api.call("PATCH", "/" + second["id"], json={"name": first["name"]})
    error = openai_error(reply, 409, "name")
    assert error["type"] == "conflict_error"
    new_name = unique()
    renamed = api.call("PATCH", "/" + second["id"], json={"name": new_name}).json()
    assert renamed["name"] == new_name
    openai_error(api.call("GET", "/" + second["name"]), 404, "id")


def test_delete_returns_an_empty_object_and_the_agent_is_gone(api: Api) -> None:
    created = api.create(name=unique())
    reply = api.call("DELETE", "/" + created["id"])
    assert reply.status_code == 200, reply.text
    assert reply.json() == {}
    openai_error(api.call("GET", "/" + created["id"]), 404, "id")
    openai_error(api.call("DELETE", "/" + created["id"]), 404, "id")


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"description": "no name", "model": "qwen3:32b"}, "name", "missing_required_parameter"),
        ({"name": "has space", "model": "qwen3:32b"}, "name", "invalid_value"),
        ({"name": "n", "model": "gpt-4o"}, "model", "model_not_found"),
        ({"name": "n", "model": "qwen3:32b", "config": {"temperature": 2.5}}, "config.temperature",
         "invalid_value"),
        ({"name": "n", "model": "qwen3:32b", "config": {"top_p": -1}}, "config.top_p",
         "invalid_value"),
        ({"name": "n", "model": "llama3.2:latest", "config": {"max_tokens": 4096}},
         "config.max_tokens", "invalid_value"),
    ],
)  # fmt: skip
def test_invalid_creates_are_400_naming_the_field(
    api: Api, body: dict[str, Any], param: str, code: str
) -> None:
    error = openai_error(api.call("POST", json=body), 400, param)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == code


def test_unknown_model_error_lists_the_configured_models(api: Api) -> None:
    error = openai_error(api.call("POST", json={"name": unique(), "model": "nope"}), 400, "model")
    for model in ("qwen3:32b", "llama3.2:latest", "gemma3:4b", "qwen3:8b"):
        assert model in error["message"]


def test_duplicate_name_is_409(api: Api) -> None:
    name = unique()
    api.create(name=name)
    error = openai_error(api.call("POST", json={"name": name, "model": "qwen3:32b"}), 409, "name")
    assert error["code"] == "agent_name_taken"


def test_unknown_agent_is_404_for_get_patch_delete(api: Api) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        kwargs = {"json": {"description": "x"}} if method == "PATCH" else {}
        reply = api.call(method, "/no-such-agent", **kwargs)
        param = "agent.id" if method == "PATCH" else "id"
        assert openai_error(reply, 404, param)["code"] == "agent_not_found"


def test_stale_etag_is_412_by_header_or_body(api: Api) -> None:
    created = api.create(name=unique())
    current = api.call("PATCH", "/" + created["id"], json={"description": "v2"}).json()
    stale = created["etag"]
    replies = [
        api.call("PATCH", "/" + created["id"], json={"description": "v3"},
                 headers={"If-Match": f'"{stale}"'}),
        api.call("PATCH", "/" + created["id"], json={"description": "v3", "etag": stale}),
        api.call("DELETE", "/" + created["id"], headers={"If-Match": stale}),
        api.call("DELETE", "/" + created["id"], params={"etag": stale}),
    ]  # fmt: skip
    for reply in replies:
        assert openai_error(reply, 412, "etag")["code"] == "etag_mismatch"
    assert api.call("GET", "/" + created["id"]).json() == current
    ok = api.call("PATCH", "/" + created["id"], json={"description": "v3"},
                  headers={"If-Match": current["etag"]})  # fmt: skip
    assert ok.status_code == 200, ok.text


def test_bad_patch_requests_are_400(api: Api) -> None:
    created = api.create(name=unique())
    path = "/" + created["id"]
    # A misspelt field is dropped by the transcoder: nothing is left to update.
    openai_error(api.call("PATCH", path, json={"descripton": "x"}), 400, "update_mask")
    reply = api.call("PATCH", path, params={"update_mask": "created_at"}, json={})
    openai_error(reply, 400, "update_mask")
    reply = api.call("PATCH", path, params={"update_mask": "colour"}, json={})
    openai_error(reply, 400, "update_mask")


def test_bad_paging_parameters_are_400(api: Api) -> None:
    openai_error(api.call("GET", params={"page_size": -1}), 400, "page_size")
    openai_error(api.call("GET", params={"page_token": "not-a-token"}), 400, "page_token")


def test_malformed_json_is_an_openai_400(api: Api) -> None:
    reply = api.call("POST", data="{bad", headers={"content-type": "application/json"})
    assert openai_error(reply, 400, None)["type"] == "invalid_request_error"


def test_without_token_is_401(api: Api) -> None:
    reply = requests.post(api.base, json={"name": unique(), "model": "qwen3:32b"}, timeout=10)
    openai_error(reply, 401, None)


# -- concurrency, idempotency, paging (concurrent clients via aiohttp) --------------------


async def post_many(
    api: Api, bodies: list[dict[str, Any]], headers: list[dict[str, str]]
) -> list[tuple[int, dict[str, Any]]]:
    async with aiohttp.ClientSession(headers=api.headers) as session:

        async def post(body: dict[str, Any], extra: dict[str, str]) -> tuple[int, dict[str, Any]]:
            async with session.post(api.base, json=body, headers=extra) as reply:
                return reply.status, await reply.json()

        return await asyncio.gather(*(post(b, h) for b, h in zip(bodies, headers, strict=True)))


async def test_pagination_over_250_agents(api: Api) -> None:
    prefix = unique("page")
    bodies = [{"name": f"{prefix}-{i:03d}", "model": "qwen3:32b"} for i in range(250)]
    results = await post_many(api, bodies, [{}] * 250)
    assert [status for status, _ in results] == [200] * 250
    created = {body["id"] for _, body in results}

    listed: list[dict[str, Any]] = []
    token, pages = "", 0
    while True:
        page = api.call("GET", params={"page_size": 100, "page_token": token}).json()
        listed.extend(page["agents"])
        pages += 1
        token = page["next_page_token"]
        if not token:
            break
    ids = [a["id"] for a in listed]
    assert len(ids) == len(set(ids)) == page["total_size"]
    assert created <= set(ids)
    assert pages == -(-len(ids) // 100)
    order = [(datetime.fromisoformat(a["created_at"]), a["id"]) for a in listed]
    assert order == sorted(order)


async def test_concurrent_patches_with_one_etag_exactly_one_wins(api: Api) -> None:
    created = api.create(name=unique())
    url = f"{api.base}/{created['id']}"
    async with aiohttp.ClientSession(headers=api.headers) as session:

        async def patch(i: int) -> int:
            body = {"description": f"editor {i}"}
            async with session.patch(url, json=body, headers={"If-Match": created["etag"]}) as r:
                if r.status == 412:
                    assert (await r.json())["error"]["param"] == "etag"
                return r.status

        statuses = await asyncio.gather(*(patch(i) for i in range(16)))
    assert sorted(statuses) == [200] + [412] * 15
    final = api.call("GET", "/" + created["id"]).json()
    assert final["description"].startswith("editor ")


async def test_idempotent_create_including_racing_retries(api: Api) -> None:
    name, key = unique(), unique("key")
    body = {"name": name, **SEED}
    results = await post_many(api, [body] * 8, [{"Idempotency-Key": key}] * 8)
    assert {status for status, _ in results} == {200}
    assert len({agent["id"] for _, agent in results}) == 1
    first = results[0][1]
    retried = api.call("POST", json=body, headers={"Idempotency-Key": key})
    assert retried.status_code == 200 and retried.json() == first
    named = [a for a in api.call("GET", params={"page_size": 1000}).json()["agents"]
             if a["name"] == name]  # fmt: skip
    assert named == [first]
    other = api.call(
        "POST", json={**body, "description": "other"}, headers={"Idempotency-Key": key}
    )
    assert openai_error(other, 422, "Idempotency-Key")["code"] == "idempotency_key_reused"


# -- restarts ----------------------------------------------------------------------------


def all_agents(api: Api) -> list[dict[str, Any]]:
    agents: list[dict[str, Any]] = []
    token = ""
    while True:
        page = api.call("GET", params={"page_size": 1000, "page_token": token}).json()
        agents.extend(page["agents"])
        token = page["next_page_token"]
        if not token:
            return agents


def test_agents_survive_registry_and_redis_restarts(stack: Stack, api: Api) -> None:
    for i in range(5):
        api.create(name=unique(f"durable{i}"), system_prompt=f"prompt {i}")
    before = all_agents(api)
    stack.restart("agents")
    assert all_agents(api) == before
    stack.restart("redis")
    assert all_agents(api) == before
    # Indexes came back too: names are still taken and resolvable.
    taken = before[0]
    reply = api.call("POST", json={"name": taken["name"], "model": "qwen3:32b"})
    openai_error(reply, 409, "name")
    assert api.call("GET", "/" + quote(taken["name"])).json() == taken


# -- native gRPC, through Envoy and direct ------------------------------------------------


@pytest.mark.parametrize("through", ["envoy", "direct"])
async def test_grpc_clients_get_typed_agents_and_status_codes(stack: Stack, through: str) -> None:
    target = stack.grpc_target if through == "envoy" else stack.addrs.agents
    auth = (("authorization", f"Bearer {stack.token}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.AgentServiceStub(channel)
        request = pb.CreateAgentRequest(agent=pb.Agent(name=unique("grpc"), model="gemma3:4b"))
        created = await stub.CreateAgent(request, metadata=auth, timeout=10)
        got = await stub.GetAgent(pb.GetAgentRequest(id=created.name), metadata=auth, timeout=10)
        assert got == created
        patch = pb.UpdateAgentRequest(
            agent=pb.Agent(id=created.id, config=pb.AgentConfig(top_p=0.5))
        )
        updated = await stub.UpdateAgent(patch, metadata=auth, timeout=10)
        assert updated.config.top_p == 0.5
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            stale = pb.DeleteAgentRequest(id=created.id, etag=created.etag)
            await stub.DeleteAgent(stale, metadata=auth, timeout=10)
        assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        await stub.DeleteAgent(pb.DeleteAgentRequest(id=created.id), metadata=auth, timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetAgent(pb.GetAgentRequest(id=created.id), metadata=auth, timeout=10)
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
