"""The OpenAPI document: generated from the protos, lint-clean, served by the gateway
without a token, describing what the gateway really answers, and importable by Postman."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import requests

from clawgate.common.services import SERVICES
from clawgate.launcher.envoy_config import OPENAPI, OPENAPI_PATH
from clawgate.launcher.stack import Stack
from clawgate.openapi.__main__ import render
from clawgate.openapi.descriptors import Descriptors, http_rule
from clawgate.openapi.generator import ERROR_SCHEMA
from tests.clients.conftest import ROOT

DOC: dict[str, Any] = json.loads(OPENAPI.read_text(encoding="utf-8"))


def test_document_matches_the_protos() -> None:
    assert render() == OPENAPI.read_text(encoding="utf-8"), (
        f"{OPENAPI.relative_to(ROOT)} is stale: run `make proto`"
    )


def test_every_rest_binding_of_every_service_is_an_operation() -> None:
    descriptors = Descriptors.load(ROOT / "deploy/envoy/clawgate.pb")
    bound = {
        m.name
        for s in SERVICES
        for service in s.grpc_services
        for m in descriptors.methods(service)
        if http_rule(m) is not None
    }
    documented = {op["operationId"] for ops in DOC["paths"].values() for op in ops.values()}
    assert bound == documented
    assert "/api/v1/agents/{id}" in DOC["paths"]
    assert set(DOC["paths"]["/api/v1/agents/{id}"]) == {"get", "patch", "delete"}


def test_document_is_lint_clean(postman_tools: Path) -> None:
    result = subprocess.run(
        ["npm", "run", "--silent", "lint:openapi"], cwd=postman_tools,
        capture_output=True, text=True,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Redocly exits 0 on warnings: the document has none either.
    assert "Your API description is valid" in output and "Warning was generated" not in output


def test_served_without_a_token(stack: Stack) -> None:
    reply = requests.get(stack.rest_url + OPENAPI_PATH, timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == DOC
    # Other methods are not documentation: the usual OpenAI-shaped 404.
    refused = requests.post(stack.rest_url + OPENAPI_PATH, timeout=10)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "unknown_endpoint"


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = {**DOC["components"]["schemas"][name], **{k: v for k, v in schema.items()
                                                           if k != "$ref"}}  # fmt: skip
    return schema


_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
    "integer": int,
    "number": (int, float),
}


def undocumented(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Where `value` has a field or a type the schema does not describe."""
    schema = _resolve(schema)
    for part in schema.get("allOf", []):
        schema = {**schema, **_resolve(part)}
    kinds = schema.get("type")
    if kinds is None:
        return []  # any JSON value
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if not any(isinstance(value, _TYPES[k]) for k in kinds) or (
        isinstance(value, bool) and "boolean" not in kinds
    ):
        return [f"{where}: {type(value).__name__} is not {kinds}"]
    problems: list[str] = []
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key not in schema["properties"]:
                problems.append(f"{where}.{key}: not documented")
            else:
                problems += undocumented(item, schema["properties"][key], f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += undocumented(item, schema["items"], f"{where}[{i}]")
    return problems


def _operation(path: str, verb: str) -> dict[str, Any]:
    operation: dict[str, Any] = DOC["paths"][path][verb]
    return operation


def _success_schema(path: str, verb: str, content_type: str = "application/json") -> Any:
    return _operation(path, verb)["responses"]["200"]["content"][content_type]["schema"]


def test_the_gateway_answers_what_the_document_describes(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {stack.token}"}
    base = stack.rest_url
    created = requests.post(
        base + "/api/v1/agents", headers=auth, timeout=10,
        json={"name": "openapi-doc-check", "model": "qwen3:32b", "config": {"temperature": 0.2}},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    agent_id = created.json()["id"]
    calls = [
        ("/api/v1/models", "get", "/api/v1/models"),
        ("/api/v1/models/{model}", "get", "/api/v1/models/qwen3:32b"),
        ("/api/v1/agents", "get", "/api/v1/agents"),
        ("/api/v1/agents/{id}", "get", f"/api/v1/agents/{agent_id}"),
        ("/api/v1/health", "get", "/api/v1/health"),
        ("/api/v1/cache/stats", "get", "/api/v1/cache/stats"),
        ("/api/v1/agents/{id}", "delete", f"/api/v1/agents/{agent_id}"),
    ]
    for path, verb, url in calls:
        reply = requests.request(verb, base + url, headers=auth, timeout=30)
        assert reply.status_code == 200, (url, reply.text)
        assert undocumented(reply.json(), _success_schema(path, verb)) == [], url

    chat = {"model": "qwen3:32b", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 8}  # fmt: skip
    path = "/api/v1/chat/completions"
    request_schema = _operation(path, "post")["requestBody"]["content"]["application/json"]
    assert undocumented(chat, request_schema["schema"]) == []
    reply = requests.post(base + path, headers=auth, json=chat, timeout=30)
    assert undocumented(reply.json(), _success_schema(path, "post")) == []
    with requests.post(base + path, headers=auth, json={**chat, "stream": True}, stream=True,
                       timeout=30) as streamed:  # fmt: skip
        frames = [line[6:] for line in streamed.iter_lines(decode_unicode=True)
                  if line.startswith("data: ")]  # fmt: skip
    assert frames[-1] == "[DONE]"
    chunk_schema = _success_schema(path, "post", "text/event-stream")
    for frame in frames[:-1]:
        assert undocumented(json.loads(frame), chunk_schema) == [], frame

    missing = requests.get(base + "/api/v1/agents/no-such-agent", headers=auth, timeout=10)
    assert missing.status_code == 404
    assert undocumented(missing.json(), ERROR_SCHEMA) == []


def test_the_checker_sees_an_undocumented_field() -> None:
    schema = _success_schema("/api/v1/models", "get")
    assert undocumented({"object": "list", "data": [], "extra": 1}, schema) == [
        "$.extra: not documented"
    ]
    assert undocumented({"object": 3}, schema) == ["$.object: int is not ['string']"]


def test_postman_imports_the_document(postman_tools: Path, tmp_path: Path) -> None:
    """Postman's own importer (openapi-to-postmanv2) turns it into a collection with one
    request per operation."""
    out = tmp_path / "imported.json"
    result = subprocess.run(
        ["node_modules/.bin/openapi2postmanv2", "-s", str(OPENAPI), "-o", str(out)],
        cwd=postman_tools, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    collection = json.loads(out.read_text())

    def requests_in(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for item in items:
            found += requests_in(item["item"]) if "item" in item else [item["request"]]
        return found

    imported = requests_in(collection["item"])
    operations = sum(len(ops) for ops in DOC["paths"].values())
    assert len(imported) == operations
    assert collection["info"]["name"] == DOC["info"]["title"]
