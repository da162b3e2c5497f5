"""The non-chat routes and gin's transport behaviour, against §0, §2 and §3 of the notes."""

from __future__ import annotations

import re

from .conftest import USER_HI, Standin


async def test_root_get_and_head(standin: Standin) -> None:
    async with standin.http.get(standin.base_url + "/") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert await resp.text() == "Ollama is running"
    async with standin.http.head(standin.base_url + "/") as resp:
        assert resp.status == 200


async def test_version_and_head_routes(standin: Standin) -> None:
    async with standin.http.get(standin.base_url + "/api/version") as resp:
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        assert await resp.json() == {"version": "0.33.0"}
    for path in ("/api/version", "/api/tags"):
        async with standin.http.head(standin.base_url + path) as resp:
            assert resp.status == 200


async def test_tags_shape_newest_first(standin: Standin) -> None:
    async with standin.http.get(standin.base_url + "/api/tags") as resp:
        models = (await resp.json())["models"]
    assert [m["name"] for m in models] == ["qwen3:8b", "llama3.2:latest"]
    first = models[0]
    assert list(first)[:6] == ["name", "model", "modified_at", "size", "digest", "details"]
    assert first["model"] == first["name"]
    assert re.fullmatch(r"[0-9a-f]{64}", first["digest"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", first["modified_at"])
    assert first["details"] == {
        "parent_model": "",
        "format": "gguf",
        "family": "qwen3",
        "families": ["qwen3"],
        "parameter_size": "8B",
        "quantization_level": "Q4_K_M",
    }
    assert "thinking" in first["capabilities"]
    assert models[0]["modified_at"] > models[1]["modified_at"]


async def test_tags_empty_is_an_empty_list(standin: Standin) -> None:
    await standin.patch(models=[])
    async with standin.http.get(standin.base_url + "/api/tags") as resp:
        assert await resp.json() == {"models": []}


async def test_v1_models_list_and_null_when_empty(standin: Standin) -> None:
    async with standin.http.get(standin.base_url + "/v1/models") as resp:
        assert resp.headers["Content-Type"] == "application/json"
        raw = await resp.text()
    assert raw.endswith("}\n")  # json.Encoder output
    body = await resp.json()
    assert body["object"] == "list"
    assert body["data"][0] == {
        "id": "qwen3:8b",
        "object": "model",
        "created": body["data"][0]["created"],
        "owned_by": "library",
    }
    assert [m["id"] for m in body["data"]] == ["qwen3:8b", "llama3.2:latest"]

    await standin.patch(models=[])
    async with standin.http.get(standin.base_url + "/v1/models") as resp:
        assert await resp.json() == {"object": "list", "data": None}


async def test_v1_model_retrieve(standin: Standin) -> None:
    async with standin.http.get(standin.base_url + "/v1/models/llama3.2") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["id"] == "llama3.2"  # the path segment, unchanged
    assert body["object"] == "model" and body["owned_by"] == "library"

    async with standin.http.get(standin.base_url + "/v1/models/nosuch") as resp:
        assert resp.status == 404
        assert await resp.json() == {
            "error": {
                "message": "model 'nosuch:latest' not found",
                "type": "not_found_error",
                "param": None,
                "code": None,
            }
        }
    # A name with "/" is more than one path segment: gin's plain 404.
    async with standin.http.get(standin.base_url + "/v1/models/ns/model") as resp:
        assert resp.status == 404
        assert await resp.text() == "404 page not found"


async def test_gin_404_and_405(standin: Standin) -> None:
    async with standin.http.get(standin.base_url + "/api/nothing") as resp:
        assert resp.status == 404
        assert resp.headers["Content-Type"] == "text/plain"
        assert await resp.text() == "404 page not found"
    for method, path in (("GET", "/api/chat"), ("POST", "/"), ("HEAD", "/api/ps")):
        async with standin.http.request(method, standin.base_url + path) as resp:
            assert resp.status == 405, (method, path)
            if method != "HEAD":
                assert await resp.text() == "405 method not allowed"


async def test_ps_empty_then_loaded_after_a_chat(standin: Standin) -> None:
    async with standin.http.get(standin.base_url + "/api/ps") as resp:
        assert await resp.json() == {"models": []}
    status, _ = await standin.v1({"model": "llama3.2", "messages": USER_HI})
    assert status == 200
    async with standin.http.get(standin.base_url + "/api/ps") as resp:
        models = (await resp.json())["models"]
    assert len(models) == 1
    entry = models[0]
    assert list(entry) == [
        "name",
        "model",
        "size",
        "digest",
        "details",
        "expires_at",
        "size_vram",
        "context_length",
    ]
    assert entry["name"] == "llama3.2:latest"
    assert entry["size_vram"] == entry["size"] > 0
    assert entry["context_length"] == 4096
    assert entry["expires_at"] > "2026"  # now + 5m, RFC3339


async def test_ps_keep_alive_and_num_ctx_from_native(standin: Standin) -> None:
    body = {
        "model": "qwen3:8b",
        "messages": USER_HI,
        "stream": False,
        "keep_alive": "1h",
        "options": {"num_ctx": 8192},
    }
    status, _ = await standin.native(body)
    assert status == 200
    async with standin.http.get(standin.base_url + "/api/ps") as resp:
        (entry,) = (await resp.json())["models"]
    assert entry["context_length"] == 8192
    # keep_alive 0 unloads right after the request.
    status, _ = await standin.native({**body, "keep_alive": 0})
    async with standin.http.get(standin.base_url + "/api/ps") as resp:
        assert (await resp.json())["models"] == []


async def test_preloaded_models_show_in_ps(standin: Standin) -> None:
    await standin.patch(preloaded=["qwen3:8b"])
    async with standin.http.get(standin.base_url + "/api/ps") as resp:
        models = (await resp.json())["models"]
    assert [m["name"] for m in models] == ["qwen3:8b"]


async def test_authorization_is_accepted_and_ignored(standin: Standin) -> None:
    for auth in ("Bearer ollama", "Bearer whatever", "Basic Zm9vOmJhcg=="):
        async with standin.http.post(
            standin.base_url + "/v1/chat/completions",
            json={"model": "llama3.2", "messages": USER_HI},
            headers={"Authorization": auth},
        ) as resp:
            assert resp.status == 200


async def test_foreign_host_header_is_refused_on_loopback(standin: Standin) -> None:
    async with standin.http.get(standin.base_url + "/", headers={"Host": "evil.example"}) as resp:
        assert resp.status == 403
        assert await resp.text() == ""
    for host in ("localhost:11434", "ollama.internal", "10.1.2.3:11434", "[::1]:11434"):
        async with standin.http.get(standin.base_url + "/", headers={"Host": host}) as resp:
            assert resp.status == 200, host
