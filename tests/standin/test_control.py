"""The /_standin/ control API, the request log, pacing, queueing and cancellation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from services.ollama_standin import create_app

from .conftest import USER_HI, Standin, fast_settings

BODY = {"model": "llama3.2", "messages": USER_HI}


async def test_settings_get_patch_reset(standin: Standin) -> None:
    async with standin.http.get(standin.base_url + "/_standin/settings") as resp:
        initial = await resp.json()
    assert initial["token_delay_ms"] == 1.0 and initial["fail"] is None
    assert [m["name"] for m in initial["models"]] == ["qwen3:8b", "llama3.2:latest"]

    updated = await standin.patch(
        models=["mistral:7b", {"name": "tiny:1b", "size": 123, "capabilities": ["completion"]}],
        legacy_stream=True,
    )
    assert [m["name"] for m in updated["models"]] == ["mistral:7b", "tiny:1b"]
    assert updated["models"][1]["size"] == updated["models"][1]["size_vram"] == 123
    assert updated["legacy_stream"] is True

    for bad in ({"nope": 1}, {"fail": "melt"}, {"token_delay_ms": "fast"}, {"models": [5]}):
        async with standin.http.patch(standin.base_url + "/_standin/settings", json=bad) as resp:
            assert resp.status == 400, bad
            assert "error" in await resp.json()

    await standin.v1({"model": "mistral:7b", "messages": USER_HI})
    async with standin.http.post(standin.base_url + "/_standin/reset") as resp:
        assert await resp.json() == initial
    assert await standin.requests() == []


async def test_request_log_entry(standin: Standin) -> None:
    async with standin.http.post(
        standin.base_url + "/v1/chat/completions",
        json={**BODY, "stream": True},
        headers={"Authorization": "Bearer sk-secret", "X-Trace-Id": "abc"},
    ) as resp:
        await resp.read()
    await standin.native({**BODY, "stream": False})
    v1, native = await standin.requests()
    assert set(v1) >= {
        "id",
        "path",
        "body",
        "headers",
        "started_at",
        "first_byte_at",
        "finished_at",
        "status",
        "chunks_sent",
    }
    assert v1["path"] == "/v1/chat/completions" and native["path"] == "/api/chat"
    assert native["id"] == v1["id"] + 1
    assert v1["body"] == {**BODY, "stream": True}
    assert v1["headers"]["x-trace-id"] == "abc"
    assert "authorization" in v1["headers"] and "sk-secret" not in str(v1)
    assert v1["started_at"] <= v1["first_byte_at"] <= v1["finished_at"]
    assert v1["status"] == native["status"] == "completed"
    assert v1["http_status"] == 200
    assert v1["chunks_sent"] > 3  # content chunks + finish + [DONE]
    assert native["chunks_sent"] == 1

    async with standin.http.get(f"{standin.base_url}/_standin/requests/{v1['id']}") as resp:
        assert (await resp.json())["id"] == v1["id"]
    async with standin.http.delete(standin.base_url + "/_standin/requests") as resp:
        assert resp.status == 204
    assert await standin.requests() == []


async def test_errors_are_logged_as_error(standin: Standin) -> None:
    await standin.v1({"model": "nosuch", "messages": USER_HI})
    (record,) = await standin.requests()
    assert (record["status"], record["http_status"]) == ("error", 404)


async def wait_for_status(standin: Standin, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 2.0  # generous: the promptness is asserted separately
    while time.monotonic() < deadline:
        records = await standin.requests()
        if records and records[-1]["status"] == status:
            return records[-1]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no request reached {status!r}: {await standin.requests()}")


async def open_stream_and_close_after(standin: Standin, chunks: int, path: str) -> float:
    """Read `chunks` frames/lines of a slow stream, then drop the connection."""
    async with aiohttp.ClientSession() as client:
        resp = await client.post(standin.base_url + path, json={**BODY, "stream": True})
        for _ in range(chunks):
            line = await resp.content.readline()
            while line.strip() == b"":  # skip SSE blank separator lines
                line = await resp.content.readline()
        resp.close()  # closes the TCP connection mid-stream
        return time.time()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat"])
async def test_client_disconnect_is_recorded_promptly(standin: Standin, path: str) -> None:
    await standin.patch(token_delay_ms=50)
    closed_at = await open_stream_and_close_after(standin, 2, path)
    record = await wait_for_status(standin, "cancelled")
    assert record["finished_at"] - closed_at < 0.2
    assert record["chunks_sent"] == 2
    await asyncio.sleep(0.15)  # generation really stopped: no more chunks were written
    assert (await standin.requests())[-1]["chunks_sent"] == 2


@pytest.fixture
async def standin_plain_runner() -> AsyncIterator[Standin]:
    """create_app() under a default AppRunner (no handler_cancellation)."""
    runner = web.AppRunner(create_app(fast_settings(token_delay_ms=50)), shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as http:
        yield Standin(f"http://127.0.0.1:{port}", http)
    await runner.cleanup()


async def test_disconnect_noticed_without_handler_cancellation(
    standin_plain_runner: Standin,
) -> None:
    closed_at = await open_stream_and_close_after(standin_plain_runner, 2, "/v1/chat/completions")
    record = await wait_for_status(standin_plain_runner, "cancelled")
    assert record["finished_at"] - closed_at < 0.2


async def test_first_token_delay_holds_back_headers(standin: Standin) -> None:
    await standin.patch(first_token_delay_ms=300)
    started = time.monotonic()
    async with standin.http.post(
        standin.base_url + "/v1/chat/completions", json={**BODY, "stream": True}
    ) as resp:
        headers_after = time.monotonic() - started
        await resp.read()
    assert headers_after >= 0.25  # no headers until the first token, like ollama


async def test_load_delay_only_on_cold_start(standin: Standin) -> None:
    await standin.patch(load_delay_ms=300)
    started = time.monotonic()
    await standin.v1(BODY)
    cold = time.monotonic() - started
    started = time.monotonic()
    await standin.v1(BODY)
    warm = time.monotonic() - started
    assert cold >= 0.25 and warm < cold


async def test_requests_for_one_model_queue_with_num_parallel_1(standin: Standin) -> None:
    # 5 tokens at 50 ms: one request takes ~250 ms of generation.
    await standin.patch(token_delay_ms=50, preloaded=["llama3.2"])
    body = {**BODY, "max_tokens": 5, "seed": 1}
    await asyncio.gather(standin.v1(body), standin.v1(body))
    first, second = await standin.requests()
    assert second["first_byte_at"] >= first["finished_at"] - 0.01  # one after the other

    await standin.patch(num_parallel=2)
    await asyncio.gather(standin.v1(body), standin.v1(body))
    third, fourth = (await standin.requests())[2:]
    assert abs(third["finished_at"] - fourth["finished_at"]) < 0.15  # side by side
